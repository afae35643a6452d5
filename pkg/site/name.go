package site

import (
	"fmt"
	"strings"
)

// Name is a DNS name in canonical form: lower case and fully qualified ("a.example.com.").
type Name string

// ParseZone parses an absolute zone or domain name such as "k8s.example.com".
// The trailing dot is optional.
func ParseZone(s string) (Name, error) {
	if err := checkName(strings.TrimSuffix(s, "."), false); err != nil {
		return "", fmt.Errorf("%q is not a valid domain name: %w", s, err)
	}
	return Name(strings.ToLower(strings.TrimSuffix(s, ".")) + "."), nil
}

// ParseOwner parses the owner name of a record: "@" is origin, a name with a trailing
// dot is absolute, any other is relative to origin. Owner names may hold underscores
// (_etcd-server-ssl._tcp) and a leading "*" label (a wildcard).
func ParseOwner(s string, origin Name) (Name, error) {
	switch {
	case s == "@":
		return origin, nil
	case strings.HasSuffix(s, "."):
		if err := checkName(strings.TrimSuffix(s, "."), true); err != nil {
			return "", fmt.Errorf("%q is not a valid DNS name: %w", s, err)
		}
		return Name(strings.ToLower(s)), nil
	}
	if err := checkName(s, true); err != nil {
		return "", fmt.Errorf("%q is not a valid DNS name: %w", s, err)
	}
	n := Name(strings.ToLower(s) + "." + string(origin))
	if len(n) > 254 {
		return "", fmt.Errorf("%q is longer than 253 characters once %s is added", s, origin)
	}
	return n, nil
}

// CheckHostname reports whether s is a valid host name: one label of letters, digits
// and inner hyphens, which the site's domain follows (cp01 is cp01.<domain>), or an
// absolute name ending in a dot (web03.example.org.). That an absolute name lies in
// one of the site's zones, and is not one label under the domain (which is written as
// its label), is a rule of the site (Set.Problems).
func CheckHostname(s string) error {
	if abs, ok := strings.CutSuffix(s, "."); ok {
		if err := checkName(abs, false); err != nil {
			return fmt.Errorf("%q is not a valid host name: %w", s, err)
		}
		return nil
	}
	if strings.Contains(s, ".") {
		first, _, _ := strings.Cut(s, ".")
		return fmt.Errorf("%q is not a valid host name: a host's name is one label, published as <name>.<domain> (for %s.<domain>, name it %q), or an absolute name in one of the site's zones, ending in a dot", s, first, first)
	}
	if err := checkName(s, false); err != nil {
		return fmt.Errorf("%q is not a valid host name: %w", s, err)
	}
	return nil
}

// HostFQDN is the DNS name of the host called name in a site whose domain is domain:
// an absolute name is itself, a label is <label>.<domain>.
func HostFQDN(name string, domain Name) Name {
	if strings.HasSuffix(name, ".") {
		return Name(name)
	}
	return Name(name + "." + string(domain))
}

// IsIn reports whether n is zone or a name below it.
func (n Name) IsIn(zone Name) bool {
	return n == zone || strings.HasSuffix(string(n), "."+string(zone))
}

// checkName checks the labels of s, which has no trailing dot. Hostname labels take
// letters, digits and inner hyphens (RFC 1123); owner names also take underscores and
// a leading "*" label (RFC 4592).
func checkName(s string, owner bool) error {
	if s == "" {
		return fmt.Errorf("the name is empty")
	}
	if len(s) > 253 {
		return fmt.Errorf("longer than 253 characters")
	}
	for i, label := range strings.Split(s, ".") {
		if label == "*" && owner && i == 0 {
			continue
		}
		if err := checkLabel(label, owner); err != nil {
			return err
		}
	}
	return nil
}

func checkLabel(label string, owner bool) error {
	switch {
	case label == "":
		return fmt.Errorf("it has an empty label")
	case len(label) > 63:
		return fmt.Errorf("label %q is longer than 63 characters", label)
	case label[0] == '-' || label[len(label)-1] == '-':
		return fmt.Errorf("label %q starts or ends with a hyphen", label)
	}
	for _, c := range label {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
		case c == '_' && owner:
		default:
			return fmt.Errorf("label %q holds %q: only letters, digits and hyphens are allowed", label, c)
		}
	}
	return nil
}

// JoinNames lists names for a message, without their final dots: "k8s.example.com,
// example.com".
func JoinNames(ns []Name) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strings.TrimSuffix(string(n), ".")
	}
	return strings.Join(s, ", ")
}

// SanitizeHostname makes a DHCP client's name a DNS label: lower case; letters, digits and
// hyphens; no hyphen at either end; at most 63 characters. What cannot be saved is "".
func SanitizeHostname(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
			b.WriteRune(c)
		case c == '_' || c == ' ':
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	return name
}
