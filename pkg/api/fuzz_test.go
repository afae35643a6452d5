package api

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/infrad/infrad/pkg/site"
)

// FuzzDecode feeds the API's strict JSON decoding and the specs' parsing any body:
// it refuses or accepts, never panics.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{`{"name":"w01","ip":"10.0.40.20","mac":"52:54:00:00:40:20"}`,
		`{"name":"vm","cidr":"10.0.40.0/24","ranges":[{"kind":"dhcp","start":"10.0.40.1","end":"10.0.40.9"}]}`,
		`{"name":"api","type":"SRV","value":"0 1 2 x","ttl":-1}`, `[1,2]`, `{"name": `, `{} {}`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var h site.HostSpec
		if decode(httptest.NewRecorder(), httptest.NewRequest("POST", "/", strings.NewReader(body)), &h) == nil {
			h.Parse()
		}
		var s site.SubnetSpec
		if decode(httptest.NewRecorder(), httptest.NewRequest("POST", "/", strings.NewReader(body)), &s) == nil {
			s.Parse()
		}
		var r site.RecordSpec
		if decode(httptest.NewRecorder(), httptest.NewRequest("POST", "/", strings.NewReader(body)), &r) == nil {
			r.Parse("k8s.example.com.")
		}
	})
}
