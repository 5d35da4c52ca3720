package cli

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tasker-go/tasker/internal/auth"
)

func TestAuthCommands(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	for _, alg := range []string{"RS256", "ES256"} {
		t.Run(alg, func(t *testing.T) {
			out := filepath.Join(keys, alg)
			if code, _, stderr := runCLI(t, "auth", "generate-keys", "--output-dir", out, "--algorithm", alg); code != 0 {
				t.Fatalf("generate-keys: %d %s", code, stderr)
			}
			if code, _, stderr := runCLI(t, "auth", "generate-keys", "--output-dir", out, "--algorithm", alg); code != ExitBadInput || !strings.Contains(stderr, "--force") {
				t.Errorf("generate-keys over existing files: %d %s, want 2 naming --force", code, stderr)
			}
			if fi, err := os.Stat(filepath.Join(out, "jwt-private-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("private key file: %v, mode %v, want 0600", err, fi.Mode())
			}
			code, tok, stderr := runCLI(t, "auth", "generate-token", "--private-key", filepath.Join(out, "jwt-private-key.pem"),
				"--permissions", "tasks:read,dlq:*", "--subject", "ops", "--expiry", "1h")
			if code != 0 {
				t.Fatalf("generate-token: %d %s", code, stderr)
			}
			for name, method := range map[string]string{"public key": "jwt_public_key_path: jwt-public-key.pem", "jwks": "jwks_path: jwks.json"} {
				cfg := filepath.Join(out, "auth-"+strings.ReplaceAll(name, " ", "-")+".yaml")
				if err := os.WriteFile(cfg, []byte(method+"\njwt_issuer: tasker-core\njwt_audience: tasker-api\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				code, stdout, stderr := runCLI(t, "auth", "validate-token", "--auth-config", cfg, strings.TrimSpace(tok))
				if code != 0 || !strings.Contains(stdout, "subject ops") || !strings.Contains(stdout, "dlq:*") {
					t.Errorf("validate-token with the %s: %d %s %s", name, code, stdout, stderr)
				}
				code, _, stderr = runCLI(t, "auth", "validate-token", "--auth-config", cfg, strings.TrimSpace(tok)+"x")
				if code != ExitFailed || !strings.Contains(stderr, "token refused (Invalid)") {
					t.Errorf("validate-token of a broken signature with the %s: %d %s", name, code, stderr)
				}
			}
		})
	}
	if code, _, stderr := runCLI(t, "auth", "generate-token", "--private-key", filepath.Join(keys, "RS256", "jwt-private-key.pem"),
		"--permissions", "tasks:fly"); code != ExitBadInput || !strings.Contains(stderr, "unknown permissions: tasks:fly") {
		t.Errorf("generate-token with an unknown permission: %d %s", code, stderr)
	}

	code, stdout, stderr := runCLI(t, "auth", "generate-api-key", "--permissions", "tasks:*", "--description", "ci")
	if code != 0 {
		t.Fatalf("generate-api-key: %d %s", code, stderr)
	}
	m := regexp.MustCompile(`(?s)\n  (tsk_\S+)\n.*- sha256: ([0-9a-f]{64})\n`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("generate-api-key output: %s", stdout)
	}
	if strings.Contains(stdout, "sha256: "+m[1]) {
		t.Fatal("the key itself was printed as its hash")
	}
	code, stdout, _ = runCLI(t, "auth", "show-permissions")
	if code != 0 || !strings.Contains(stdout, "system:analytics_read") || !strings.Contains(stdout, "worker:templates_read") {
		t.Errorf("show-permissions: %d %s", code, stdout)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("jwt_public_key_path: nope.pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI(t, "serve", "--db", filepath.Join(dir, "t.db"), "--auth-config", bad)
	if code != ExitBadInput || !strings.Contains(stderr, "jwt_issuer is empty") {
		t.Errorf("serve with a bad auth config: %d %s, want 2 naming jwt_issuer", code, stderr)
	}
}

// tasker serve --auth-config: the real process refuses a request without
// the key, answers one with it, and keeps health and metrics public.
func TestServeWithAuth(t *testing.T) {
	dir := t.TempDir()
	key, sum, err := auth.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "auth.yaml")
	if err := os.WriteFile(cfg, []byte("api_keys:\n  - sha256: "+sum+"\n    permissions: [tasks:list]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"serve", "--db", filepath.Join(dir, "t.db"), "--http", "127.0.0.1:0", "--auth-config", cfg}, &syncBuffer{}, &stderr)
	}()
	defer func() {
		stop()
		if code := <-done; code != 0 {
			t.Errorf("serve ended with %d: %s", code, stderr.String())
		}
	}()
	addrRE := regexp.MustCompile(`REST API on (http://[0-9.:]+), auth from `)
	var base string
	for deadline := time.Now().Add(20 * time.Second); base == ""; {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no API address announced with auth:\n%s", stderr.String())
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	get := func(path, apiKey string) int {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", base+path, nil)
		if apiKey != "" {
			req.Header.Set("X-API-Key", apiKey)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		path, key string
		want      int
	}{
		{"/v1/tasks", "", 401}, {"/v1/tasks", "tsk_other", 401}, {"/v1/tasks", key, 200},
		{"/v1/templates", key, 403}, {"/health", "", 200}, {"/metrics", "", 200},
	} {
		if got := get(c.path, c.key); got != c.want {
			t.Errorf("GET %s (key %v): %d, want %d", c.path, c.key != "", got, c.want)
		}
	}
}
