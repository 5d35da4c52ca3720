package auth_test

import (
	"net/http"
	"testing"

	"github.com/tasker-go/tasker/internal/auth"
)

// FuzzAuthenticate sends arbitrary Authorization and X-API-Key headers:
// never a panic, never a principal (no key is known and no token is
// signed by the configured key), and every failure has a reason of the
// spec's vocabulary.
func FuzzAuthenticate(f *testing.F) {
	dir, _ := fixture(f, "ES256")
	a := authenticatorTB(f, "jwt_public_key_path: pub.pem\njwt_issuer: tasker-core\njwt_audience: tasker-api\n"+
		"api_keys:\n  - sha256: "+auth.HashAPIKey("the-only-key")+"\n    permissions: [tasks:read]\n", dir)
	for _, s := range []string{"Bearer a.b.c", "Bearer eyJhbGciOiJub25lIn0.e30.", "bearer  x", "Basic x", "Bearer", "",
		"Bearer eyJhbGciOiJFUzI1NiIsImtpZCI6IngifQ.eyJleHAiOjF9.AAAA"} {
		f.Add(s, "")
		f.Add("", s)
	}
	reasons := map[auth.Reason]bool{auth.ReasonMissing: true, auth.ReasonExpired: true, auth.ReasonInvalid: true, auth.ReasonMalformed: true}
	f.Fuzz(func(t *testing.T, authorization, apiKey string) {
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header["Authorization"] = []string{authorization}
		r.Header["X-Api-Key"] = []string{apiKey}
		p, fail := a.Authenticate(r)
		if apiKey == "the-only-key" {
			if fail != nil {
				t.Fatalf("the configured key was refused: %v", fail)
			}
			return
		}
		if p != nil || fail == nil || !reasons[fail.Reason] || fail.Message == "" {
			t.Fatalf("Authorization %q, X-API-Key %q: principal %+v, failure %+v", authorization, apiKey, p, fail)
		}
	})
}
