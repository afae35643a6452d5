package site

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// ParseRecord checks that value is valid RDATA for typ and returns the record with
// the value in canonical presentation form: names in it that are relative are completed
// with origin ("bastion" becomes "bastion.k8s.example.com."). A TXT value is one string,
// quoted here unless it is quoted already.
func ParseRecord(name Name, typ, value string, ttl *uint32, origin Name) (Record, error) {
	typ = strings.ToUpper(typ)
	if !slices.Contains(RecordTypes, typ) {
		return Record{}, fmt.Errorf("type %q is not one of %s", typ, strings.Join(RecordTypes, ", "))
	}
	if strings.TrimSpace(value) == "" {
		return Record{}, fmt.Errorf("the %s record has no value", typ)
	}
	if strings.ContainsAny(value, "\n\r") {
		return Record{}, fmt.Errorf("the value holds a line break")
	}
	if typ == "TXT" && !strings.HasPrefix(value, `"`) {
		value = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(value) + `"`
	}
	line := fmt.Sprintf("%s IN %s %s", name, typ, value)
	zp := dns.NewZoneParser(strings.NewReader(line), string(origin), "")
	rr, ok := zp.Next()
	if err := zp.Err(); err != nil || !ok {
		return Record{}, fmt.Errorf("%q is not a valid %s value%s", value, typ, parseDetail(err))
	}
	if got := dns.TypeToString[rr.Header().Rrtype]; got != typ {
		return Record{}, fmt.Errorf("%q is not a valid %s value", value, typ)
	}
	rdata := strings.TrimPrefix(rr.String(), rr.Header().String())
	return Record{Name: name, Type: typ, Value: rdata, TTL: copyTTL(ttl)}, nil
}

// copyTTL is a TTL of the record's own, not shared with the caller's.
func copyTTL(ttl *uint32) *uint32 {
	if ttl == nil {
		return nil
	}
	t := *ttl
	return &t
}

// DefaultTTL is the TTL of a record's parsed RR in the model when the record has no
// TTL of its own: DNS serves it at the site's dns.ttl. (No TTL is this high: RFC 2181
// §8 caps them at 2^31-1.)
const DefaultTTL = math.MaxUint32

// parseDetail turns a zone parser error into a short clause such as
// ": bad SRV Port", without the parser's line and column (the line is ours).
func parseDetail(err error) string {
	if err == nil {
		return ""
	}
	msg := strings.TrimPrefix(err.Error(), "dns: ")
	msg, _, _ = strings.Cut(msg, ": ")
	return ": " + msg
}
