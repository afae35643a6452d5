package importer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// SiteFile is a site file with an import written into it.
type SiteFile struct {
	Data []byte
	// First is, per list ("subnets", "hosts", "dns.records"), the index in the file
	// of the import's first object: the objects before it were the file's.
	First map[string]int
}

// WriteInto writes s into the site file base (nil or empty: a new one): its subnets,
// hosts and records after the file's own, each with its source as a comment, and the
// domain, zones, forwarders, TTL and lease time where the file says none. The file's
// own keys, order and comments stay as they were.
func (s *Site) WriteInto(base []byte) (SiteFile, error) {
	var doc yaml.Node
	if len(bytes.TrimSpace(base)) > 0 {
		if err := yaml.Unmarshal(base, &doc); err != nil {
			return SiteFile{}, fmt.Errorf("the site file is not YAML: %w", err)
		}
	}
	if doc.Kind == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return SiteFile{}, fmt.Errorf("the site file is not a mapping of keys")
	}
	out := SiteFile{First: map[string]int{}}
	if s.Domain != "" {
		setDefault(root, "domain", scalar(s.Domain))
	}
	dns := child(root, "dns", yaml.MappingNode)
	if len(s.Zones) > 0 {
		zones := child(dns, "zones", yaml.SequenceNode)
		for _, z := range s.Zones {
			if !hasScalar(zones, z) {
				zones.Content = append(zones.Content, scalar(z))
			}
		}
		zones.Style = yaml.FlowStyle
	}
	if len(s.Forwarders) > 0 {
		fw := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, f := range s.Forwarders {
			fw.Content = append(fw.Content, scalar(f))
		}
		setDefault(dns, "forwarders", fw)
	}
	if s.TTL > 0 {
		setDefault(dns, "ttl", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(s.TTL)})
	}
	if s.LeaseTime != "" {
		setDefault(child(root, "dhcp", yaml.MappingNode), "lease_time", scalar(s.LeaseTime))
	}
	lists := []struct {
		parent  *yaml.Node
		key     string
		path    string
		objects any
		flow    bool
	}{
		{root, "subnets", "subnets", s.Subnets, false},
		{root, "hosts", "hosts", s.Hosts, true},
		{dns, "records", "dns.records", s.Records, true},
	}
	for _, l := range lists {
		var items []*yaml.Node
		if err := asYAML(l.objects, &items); err != nil {
			return SiteFile{}, err
		}
		if len(items) == 0 {
			continue
		}
		seq := child(l.parent, l.key, yaml.SequenceNode)
		seq.Style = 0
		out.First[l.path] = len(seq.Content)
		for i, it := range items {
			if l.flow {
				it.Style = yaml.FlowStyle
			} else {
				for _, v := range it.Content { // a subnet's ranges and options, one line each
					if v.Kind == yaml.SequenceNode {
						for _, r := range v.Content {
							r.Style = yaml.FlowStyle
						}
					} else if v.Kind == yaml.MappingNode {
						v.Style = yaml.FlowStyle
					}
				}
			}
			from, ok := s.From[fmt.Sprintf("%s[%d]", l.path, i)]
			comment := strings.Map(func(r rune) rune { // (a comment is UTF-8 without control characters: a file's name may be neither)
				if unicode.IsControl(r) {
					return '\uFFFD'
				}
				return r
			}, strings.ToValidUTF8("from "+from.String(), "\uFFFD"))
			if ok && l.flow {
				it.LineComment = comment
			} else if ok {
				it.HeadComment = comment
			}
			seq.Content = append(seq.Content, it)
		}
	}
	if len(dns.Content) == 0 {
		remove(root, "dns")
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return SiteFile{}, err
	}
	out.Data = buf.Bytes()
	return out, nil
}

var pathRe = regexp.MustCompile(`^(subnets|hosts|dns\.records)\[(\d+)\]`)

// Source is where the object at path in a SiteFile made by WriteInto came from: the
// import's source line for an imported object; false for the file's own.
func (s *Site) Source(f SiteFile, path string) (Pos, bool) {
	m := pathRe.FindStringSubmatch(path)
	if m == nil {
		return Pos{}, false
	}
	first, ok := f.First[m[1]]
	i, _ := strconv.Atoi(m[2])
	if !ok || i < first {
		return Pos{}, false
	}
	p, ok := s.From[fmt.Sprintf("%s[%d]", m[1], i-first)]
	return p, ok
}

// asYAML turns specs into YAML nodes by way of their JSON, whose tags leave out what
// is not set (the site file's keys are spelled the same), in plain style.
func asYAML(v any, out *[]*yaml.Node) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var seq yaml.Node
	if err := yaml.Unmarshal(printable(raw), &seq); err != nil {
		return err
	}
	if len(seq.Content) == 0 || seq.Content[0].Kind != yaml.SequenceNode {
		return nil
	}
	plain(seq.Content[0])
	*out = seq.Content[0].Content
	return nil
}

// printable escapes in JSON's strings what YAML's reader refuses and JSON leaves as it
// is (DEL, the C1 controls, U+FFFE): escaped, the value reaches validation, which
// names it.
func printable(raw []byte) []byte {
	var b bytes.Buffer
	for _, r := range string(raw) {
		if r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0x7e || r == 0x85 || r >= 0xa0 && r <= 0xd7ff || r >= 0xe000 && r <= 0xfffd || r >= 0x10000 {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, "\\u%04x", r)
		}
	}
	return b.Bytes()
}

// plain drops the JSON's quoting and flow style: the encoder quotes a string that
// would read as something else.
func plain(n *yaml.Node) {
	n.Style = 0
	n.Value = strings.ToValidUTF8(n.Value, "\uFFFD")
	if strings.ContainsFunc(n.Value, unicode.IsControl) {
		n.Style = yaml.DoubleQuotedStyle // (escaped: validation then names the value)
	}
	for _, c := range n.Content {
		plain(c)
	}
}

func scalar(v string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
	plain(n)
	return n
}

// child is the value of key in the mapping m, made (of kind) when absent. m is
// written in block style from now on: what is added to it comes with comments.
func child(m *yaml.Node, key string, kind yaml.Kind) *yaml.Node {
	m.Style &^= yaml.FlowStyle
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := m.Content[i+1]
			if v.Kind != kind && v.Tag == "!!null" {
				*v = yaml.Node{Kind: kind}
			}
			return v
		}
	}
	v := &yaml.Node{Kind: kind}
	m.Content = append(m.Content, scalar(key), v)
	return v
}

// setDefault sets key in m to v unless m has it.
func setDefault(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return
		}
	}
	m.Content = append(m.Content, scalar(key), v)
}

func remove(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

func hasScalar(seq *yaml.Node, v string) bool {
	for _, c := range seq.Content {
		if c.Value == v {
			return true
		}
	}
	return false
}
