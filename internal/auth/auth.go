package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// Clock tells the time tokens' expiry is checked against.
type Clock interface{ Now() time.Time }

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// Reason is why a request was refused: the spec's AuthFailureReason.
type Reason string

// The spec's AuthFailureReason values.
const (
	ReasonMissing   Reason = "Missing"
	ReasonExpired   Reason = "Expired"
	ReasonInvalid   Reason = "Invalid"
	ReasonMalformed Reason = "Malformed"
	ReasonForbidden Reason = "Forbidden"
)

// Severity is the spec's AuthFailureSeverity for a reason: how hard a
// gateway in front might rate-limit the caller.
func (r Reason) Severity() string {
	switch r {
	case ReasonMissing, ReasonExpired:
		return "Low"
	case ReasonInvalid:
		return "High"
	default:
		return "Medium"
	}
}

// Failure is a refused credential.
type Failure struct {
	Reason  Reason
	Message string
}

func (f *Failure) Error() string { return f.Message }

// Principal is who a request authenticated as.
type Principal struct {
	// Subject is the token's sub, or "api-key:" and the key's description
	// (else the first 8 hex digits of its hash).
	Subject string
	// Method is "jwt" or "api_key".
	Method string
	// ID names the principal for what it owns (a pull worker): "jwt:" and
	// the token's sub, or "api_key:" and the key's SHA-256. It is "" for a
	// token without a sub, which owns nothing.
	ID          string
	Permissions []string
}

// Allows says whether the principal holds required.
func (p *Principal) Allows(required string) bool { return Allows(p.Permissions, required) }

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal ctx carries, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// Authenticator checks a request's credentials against a Config.
type Authenticator struct {
	cfg    Config
	parser *jwt.Parser
	keys   jwt.Keyfunc // nil without a JWT verifier
	hashes [][]byte    // the API keys' hashes, as cfg.APIKeys
}

// New returns an Authenticator for cfg, reading its key files; clock nil
// means the wall clock.
func New(cfg Config, clock Clock) (*Authenticator, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if clock == nil {
		clock = wallClock{}
	}
	a := &Authenticator{cfg: cfg}
	for _, k := range cfg.APIKeys {
		h, _ := hex.DecodeString(strings.ToLower(k.SHA256)) // validated
		a.hashes = append(a.hashes, h)
	}
	switch cfg.JWTVerificationMethod {
	case MethodPublicKey:
		raw, err := os.ReadFile(cfg.JWTPublicKeyPath)
		if err != nil {
			return nil, fmt.Errorf("jwt_public_key_path: %w", err)
		}
		key, err := ParsePublicKeyPEM(raw)
		if err != nil {
			return nil, fmt.Errorf("jwt_public_key_path %s: %w", cfg.JWTPublicKeyPath, err)
		}
		a.keys = func(*jwt.Token) (any, error) { return key, nil }
	case MethodJWKS:
		raw, err := os.ReadFile(cfg.JWKSPath)
		if err != nil {
			return nil, fmt.Errorf("jwks_path: %w", err)
		}
		kf, err := keyfunc.NewJWKSetJSON(json.RawMessage(raw))
		if err != nil {
			return nil, fmt.Errorf("jwks_path %s: not a JSON Web Key Set: %w", cfg.JWKSPath, err)
		}
		a.keys = kf.Keyfunc
	}
	a.parser = jwt.NewParser(
		jwt.WithValidMethods(cfg.AllowedAlgorithms),
		jwt.WithIssuer(cfg.JWTIssuer),
		jwt.WithAudience(cfg.JWTAudience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(clock.Now),
	)
	return a, nil
}

// Config returns the config the Authenticator checks against.
func (a *Authenticator) Config() Config { return a.cfg }

// Authenticate returns the principal of r's credentials: an API key in the
// configured header, else a bearer token in Authorization. It reads
// headers only, never the body.
func (a *Authenticator) Authenticate(r *http.Request) (*Principal, *Failure) {
	if key := r.Header.Get(a.cfg.APIKeyHeader); key != "" {
		return a.apiKey(key)
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, &Failure{ReasonMissing, fmt.Sprintf("no credentials: send Authorization: Bearer <token> or %s: <key>", a.cfg.APIKeyHeader)}
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, &Failure{ReasonMalformed, "the Authorization header is not \"Bearer <token>\""}
	}
	return a.Token(strings.TrimSpace(token))
}

// apiKey looks key up by its hash, comparing with every configured hash in
// constant time.
func (a *Authenticator) apiKey(key string) (*Principal, *Failure) {
	sum := sha256.Sum256([]byte(key))
	found := -1
	for i, h := range a.hashes {
		if subtle.ConstantTimeCompare(sum[:], h) == 1 {
			found = i
		}
	}
	if found < 0 {
		return nil, &Failure{ReasonInvalid, "the API key is not one this server accepts"}
	}
	k := a.cfg.APIKeys[found]
	name := k.Description
	if name == "" {
		name = strings.ToLower(k.SHA256)[:8]
	}
	return &Principal{Subject: "api-key:" + name, Method: "api_key", ID: "api_key:" + strings.ToLower(k.SHA256), Permissions: k.Permissions}, nil
}

// Token verifies a JWT: its signature (with the configured key, by an
// allowed algorithm), issuer, audience and expiry, and its permissions.
func (a *Authenticator) Token(token string) (*Principal, *Failure) {
	if a.keys == nil {
		return nil, &Failure{ReasonInvalid, "this server accepts API keys only (no JWT verifier is configured)"}
	}
	claims := jwt.MapClaims{}
	_, err := a.parser.ParseWithClaims(token, claims, a.keys)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, &Failure{ReasonExpired, "the token has expired: get a new one"}
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, &Failure{ReasonMalformed, "the bearer token is not a JWT: " + err.Error()}
	default:
		return nil, &Failure{ReasonInvalid, "the token is not valid: " + err.Error()}
	}
	perms, ferr := a.permissions(claims)
	if ferr != nil {
		return nil, ferr
	}
	sub, _ := claims.GetSubject()
	p := &Principal{Subject: sub, Method: "jwt", Permissions: perms}
	if sub != "" {
		p.ID = "jwt:" + sub
	}
	return p, nil
}

func (a *Authenticator) permissions(claims jwt.MapClaims) ([]string, *Failure) {
	name := a.cfg.PermissionsClaim
	v, ok := claims[name]
	if !ok {
		return nil, nil // a token with no permissions: authenticated, allowed nothing
	}
	list, ok := v.([]any)
	if !ok {
		return nil, &Failure{ReasonInvalid, fmt.Sprintf("the token's %q claim is not an array of strings", name)}
	}
	perms := make([]string, 0, len(list))
	for _, p := range list {
		s, ok := p.(string)
		if !ok {
			return nil, &Failure{ReasonInvalid, fmt.Sprintf("the token's %q claim is not an array of strings", name)}
		}
		perms = append(perms, s)
	}
	if *a.cfg.StrictValidation {
		if err := checkKnown(perms); err != nil {
			return nil, &Failure{ReasonInvalid, "the token's " + err.Error()}
		}
	}
	return perms, nil
}
