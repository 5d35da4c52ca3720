package auth_test

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tasker-go/tasker/internal/auth"
	"github.com/tasker-go/tasker/internal/testclock"
)

// fixture writes a key pair and returns its paths.
func fixture(t testing.TB, alg string) (dir string, kp auth.KeyPair) {
	t.Helper()
	kp, err := auth.GenerateKeyPair(alg, 2048)
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	for name, b := range map[string][]byte{"priv.pem": kp.Private, "pub.pem": kp.Public, "jwks.json": kp.JWKS} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, kp
}

func authenticatorTB(t testing.TB, cfgYAML, dir string) *auth.Authenticator {
	t.Helper()
	return authenticator(t, cfgYAML, dir, nil)
}

func authenticator(t testing.TB, cfgYAML string, dir string, clock auth.Clock) *auth.Authenticator {
	t.Helper()
	path := filepath.Join(dir, "auth.yaml")
	if err := os.WriteFile(path, []byte(cfgYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := auth.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(cfg, clock)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func bearer(tok string) *http.Request {
	r, _ := http.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func TestTokens(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256"} {
		for _, method := range []string{"jwt_public_key_path: pub.pem", "jwks_path: jwks.json"} {
			t.Run(alg+" "+method, func(t *testing.T) {
				dir, kp := fixture(t, alg)
				_, other := fixture(t, alg)
				clock := testclock.New(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
				a := authenticator(t, method+"\njwt_issuer: tasker-core\njwt_audience: tasker-api\n", dir, clock)
				spec := auth.TokenSpec{Subject: "svc", Issuer: "tasker-core", Audience: "tasker-api",
					Permissions: []string{"tasks:read", "dlq:*"}, IssuedAt: clock.Now(), TTL: time.Hour}
				sign := func(key []byte, s auth.TokenSpec) string {
					tok, err := auth.GenerateToken(key, s)
					if err != nil {
						t.Fatal(err)
					}
					return tok
				}
				p, f := a.Authenticate(bearer(sign(kp.Private, spec)))
				if f != nil {
					t.Fatalf("a good token was refused: %v", f)
				}
				if p.Subject != "svc" || !p.Allows("tasks:read") || !p.Allows("dlq:update") || p.Allows("tasks:create") {
					t.Fatalf("principal %+v", p)
				}
				refused := map[string]struct {
					tok  string
					want auth.Reason
				}{
					"signed by another key":               {sign(other.Private, spec), auth.ReasonInvalid},
					"expired":                             {sign(kp.Private, auth.TokenSpec{Subject: "svc", Issuer: "tasker-core", Audience: "tasker-api", IssuedAt: clock.Now().Add(-2 * time.Hour), TTL: time.Hour}), auth.ReasonExpired},
					"another issuer":                      {sign(kp.Private, auth.TokenSpec{Subject: "svc", Issuer: "evil", Audience: "tasker-api", IssuedAt: clock.Now(), TTL: time.Hour}), auth.ReasonInvalid},
					"another audience":                    {sign(kp.Private, auth.TokenSpec{Subject: "svc", Issuer: "tasker-core", Audience: "other", IssuedAt: clock.Now(), TTL: time.Hour}), auth.ReasonInvalid},
					"not a JWT":                           {"abc", auth.ReasonMalformed},
					"alg none":                            {noneToken(t), auth.ReasonInvalid},
					"HS256 with the public key as secret": {hsToken(t, kp.Public), auth.ReasonInvalid},
					"unknown permission":                  {unknownPermToken(t, kp.Private, clock.Now()), auth.ReasonInvalid},
				}
				for name, c := range refused {
					if _, f := a.Authenticate(bearer(c.tok)); f == nil || f.Reason != c.want {
						t.Errorf("%s: failure %v, want reason %s", name, f, c.want)
					}
				}
			})
		}
	}
}

func noneToken(t *testing.T) string {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "x", "iss": "tasker-core", "aud": "tasker-api",
		"exp": time.Now().Add(time.Hour).Unix(), "permissions": []string{"*"}}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func hsToken(t *testing.T, secret []byte) string {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "x", "iss": "tasker-core", "aud": "tasker-api",
		"exp": time.Now().Add(time.Hour).Unix(), "permissions": []string{"*"}}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func unknownPermToken(t *testing.T, priv []byte, now time.Time) string {
	key, alg, err := auth.ParsePrivateKeyPEM(priv)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.NewWithClaims(jwt.GetSigningMethod(alg), jwt.MapClaims{"sub": "x", "iss": "tasker-core", "aud": "tasker-api", "iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(), "permissions": []string{"tasks:delete"}}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestAPIKeys(t *testing.T) {
	key, sum, err := auth.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	a := authenticator(t, "api_keys:\n  - sha256: "+sum+"\n    permissions: [tasks:list]\n    description: monitor\n", t.TempDir(), nil)
	r, _ := http.NewRequest("GET", "/", nil)
	r.Header.Set("X-API-Key", key)
	p, f := a.Authenticate(r)
	if f != nil || p.Subject != "api-key:monitor" || !p.Allows("tasks:list") || p.Allows("tasks:read") {
		t.Fatalf("principal %+v, failure %v", p, f)
	}
	r.Header.Set("X-API-Key", key+"x")
	if _, f := a.Authenticate(r); f == nil || f.Reason != auth.ReasonInvalid {
		t.Fatalf("a wrong key: failure %v", f)
	}
	r.Header.Del("X-API-Key")
	if _, f := a.Authenticate(r); f == nil || f.Reason != auth.ReasonMissing {
		t.Fatalf("no credentials: failure %v", f)
	}
	r.Header.Set("Authorization", "Basic abc")
	if _, f := a.Authenticate(r); f == nil || f.Reason != auth.ReasonMalformed {
		t.Fatalf("basic auth: failure %v", f)
	}
	if _, f := a.Authenticate(bearer("a.b.c")); f == nil || f.Reason != auth.ReasonInvalid {
		t.Fatalf("a token to a server of API keys only: failure %v", f)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for in, want := range map[string]string{
		"":                                   "no credentials can pass",
		"jwt_public_key_path: k.pem\n":       "jwt_issuer is empty",
		"jwks_path: j.json\njwt_issuer: i\n": "jwt_audience is empty",
		"api_keys:\n  - sha256: abc\n    permissions: [tasks:read]\n":                            "api_keys[0].sha256",
		"api_keys:\n  - sha256: " + strings.Repeat("a", 64) + "\n    permissions: [tasks:fly]\n": "unknown permissions: tasks:fly",
		"api_keys:\n  - sha256: " + strings.Repeat("a", 64) + "\n":                               "has no permissions",
		"jwt_verification_method: magic\n":                                                       "use public_key, jwks or none",
		"allowed_algorithms: [HS256]\napi_keys: []\n":                                            "only RS256 and ES256",
		"apikeys: []\n": "field apikeys not found",
	} {
		_, err := auth.ParseConfig([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one saying %q", in, err, want)
		}
	}
}

func TestAllows(t *testing.T) {
	for _, c := range []struct {
		granted  []string
		required string
		want     bool
	}{
		{[]string{"tasks:read"}, "tasks:read", true},
		{[]string{"tasks:read"}, "tasks:list", false},
		{[]string{"tasks:*"}, "tasks:cancel", true},
		{[]string{"tasks:*"}, "steps:read", false},
		{[]string{"*"}, "system:config_read", true},
		{nil, "tasks:read", false},
		{[]string{"tasks"}, "tasks:read", false},
	} {
		if got := auth.Allows(c.granted, c.required); got != c.want {
			t.Errorf("Allows(%v, %s) = %v, want %v", c.granted, c.required, got, c.want)
		}
	}
	// tasker-core's 17, and Tasker's templates:register.
	if len(auth.Permissions) != 18 || !slices.ContainsFunc(auth.Permissions, func(p auth.Permission) bool { return p.Name == auth.PermTemplatesRegister }) {
		t.Errorf("the vocabulary has %d permissions, want tasker-core's 17 and %s", len(auth.Permissions), auth.PermTemplatesRegister)
	}
}
