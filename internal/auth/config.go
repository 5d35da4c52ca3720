package auth

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Config is the auth config file (`tasker serve --auth-config FILE`), YAML
// (JSON is YAML too). Field names follow tasker-core's [web.auth] table.
// Paths are relative to the file's directory.
type Config struct {
	// JWTIssuer is the iss every token must carry. Required with a JWT
	// verifier.
	JWTIssuer string `yaml:"jwt_issuer"`
	// JWTAudience is an aud every token must carry. Required with a JWT
	// verifier.
	JWTAudience string `yaml:"jwt_audience"`
	// JWTVerificationMethod is "public_key" (JWTPublicKeyPath), "jwks"
	// (JWKSPath) or "none" (API keys only). Empty means "public_key" when
	// JWTPublicKeyPath is set, "jwks" when JWKSPath is, else "none".
	JWTVerificationMethod string `yaml:"jwt_verification_method"`
	// JWTPublicKeyPath is a PEM file holding an RSA key (RS256) or a P-256
	// EC key (ES256).
	JWTPublicKeyPath string `yaml:"jwt_public_key_path"`
	// JWKSPath is a JSON Web Key Set file; tokens name their key by kid.
	JWKSPath string `yaml:"jwks_path"`
	// AllowedAlgorithms are the token algorithms accepted. Empty means
	// RS256 and ES256, the only ones allowed.
	AllowedAlgorithms []string `yaml:"allowed_algorithms"`
	// PermissionsClaim is the claim holding a token's permissions (an array
	// of strings). Empty means "permissions".
	PermissionsClaim string `yaml:"permissions_claim"`
	// StrictValidation refuses (401) a token carrying a permission outside
	// the vocabulary. Nil means true.
	StrictValidation *bool `yaml:"strict_validation"`
	// APIKeyHeader is the header carrying an API key. Empty means
	// "X-API-Key".
	APIKeyHeader string `yaml:"api_key_header"`
	// APIKeys are the accepted keys, by hash.
	APIKeys []APIKey `yaml:"api_keys"`
	// Public says which unprotected route groups stay open without
	// credentials. Each defaults to true.
	Public Public `yaml:"public"`
}

// APIKey is one accepted API key: the hex SHA-256 of the key (never the
// key itself; `tasker auth generate-api-key` makes both) and what it may do.
type APIKey struct {
	SHA256      string   `yaml:"sha256"`
	Permissions []string `yaml:"permissions"`
	Description string   `yaml:"description"`
}

// Public says which route groups answer without credentials. Nil means true.
type Public struct {
	Health  *bool `yaml:"health"`  // /health, /health/*, /live, /ready
	Metrics *bool `yaml:"metrics"` // /metrics
	Docs    *bool `yaml:"docs"`    // /api-docs/openapi.json
}

// Group names a route group for Public.
type Group string

// The route groups Public opens.
const (
	GroupHealth  Group = "health"
	GroupMetrics Group = "metrics"
	GroupDocs    Group = "docs"
)

// IsPublic says whether the group answers without credentials.
func (p Public) IsPublic(g Group) bool {
	var v *bool
	switch g {
	case GroupHealth:
		v = p.Health
	case GroupMetrics:
		v = p.Metrics
	case GroupDocs:
		v = p.Docs
	default:
		return false
	}
	return v == nil || *v
}

// Verification methods.
const (
	MethodPublicKey = "public_key"
	MethodJWKS      = "jwks"
	MethodNone      = "none"
)

// LoadConfig reads and checks a config file; paths in it are made relative
// to the file's directory.
func LoadConfig(path string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("auth config: %w", err)
	}
	cfg, err := ParseConfig(raw)
	if err != nil {
		return Config{}, fmt.Errorf("auth config %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	for _, p := range []*string{&cfg.JWTPublicKeyPath, &cfg.JWKSPath} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	return cfg, nil
}

// ParseConfig decodes a config file's contents, refusing unknown fields,
// and checks it.
func ParseConfig(raw []byte) (Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("decode (YAML or JSON with the fields of docs/api.md): %w", err)
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// WithDefaults returns a copy with the defaults filled in.
func (c Config) WithDefaults() Config {
	if c.JWTVerificationMethod == "" {
		switch {
		case c.JWTPublicKeyPath != "":
			c.JWTVerificationMethod = MethodPublicKey
		case c.JWKSPath != "":
			c.JWTVerificationMethod = MethodJWKS
		default:
			c.JWTVerificationMethod = MethodNone
		}
	}
	if len(c.AllowedAlgorithms) == 0 {
		c.AllowedAlgorithms = []string{"RS256", "ES256"}
	}
	if c.PermissionsClaim == "" {
		c.PermissionsClaim = "permissions"
	}
	if c.StrictValidation == nil {
		t := true
		c.StrictValidation = &t
	}
	if c.APIKeyHeader == "" {
		c.APIKeyHeader = "X-API-Key"
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	switch c.JWTVerificationMethod {
	case MethodPublicKey:
		if c.JWTPublicKeyPath == "" {
			errs = append(errs, errors.New("jwt_verification_method public_key needs jwt_public_key_path (a PEM file; `tasker auth generate-keys` writes one)"))
		}
	case MethodJWKS:
		if c.JWKSPath == "" {
			errs = append(errs, errors.New("jwt_verification_method jwks needs jwks_path (a JWKS JSON file)"))
		}
	case MethodNone:
		if len(c.APIKeys) == 0 {
			errs = append(errs, errors.New("no credentials can pass: set jwt_public_key_path or jwks_path, or list api_keys"))
		}
	default:
		errs = append(errs, fmt.Errorf("jwt_verification_method %q: use public_key, jwks or none", c.JWTVerificationMethod))
	}
	if c.JWTVerificationMethod != MethodNone {
		if c.JWTIssuer == "" {
			errs = append(errs, errors.New("jwt_issuer is empty: name the issuer tokens must carry"))
		}
		if c.JWTAudience == "" {
			errs = append(errs, errors.New("jwt_audience is empty: name the audience tokens must carry"))
		}
	}
	for _, a := range c.AllowedAlgorithms {
		if a != "RS256" && a != "ES256" {
			errs = append(errs, fmt.Errorf("allowed_algorithms: %q: only RS256 and ES256 are supported", a))
		}
	}
	if strings.ContainsAny(c.APIKeyHeader, " :\r\n") {
		errs = append(errs, fmt.Errorf("api_key_header %q is not a header name", c.APIKeyHeader))
	}
	seen := map[string]bool{}
	for i, k := range c.APIKeys {
		h := strings.ToLower(k.SHA256)
		if b, err := hex.DecodeString(h); err != nil || len(b) != 32 {
			errs = append(errs, fmt.Errorf("api_keys[%d].sha256: want 64 hex digits, the SHA-256 of the key (`tasker auth generate-api-key` prints it)", i))
		}
		if seen[h] {
			errs = append(errs, fmt.Errorf("api_keys[%d]: the same hash is listed twice", i))
		}
		seen[h] = true
		if len(k.Permissions) == 0 {
			errs = append(errs, fmt.Errorf("api_keys[%d] has no permissions: list what it may do", i))
		}
		if err := checkKnown(k.Permissions); err != nil {
			errs = append(errs, fmt.Errorf("api_keys[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// Safe is the part of a Config that may be shown (GET /config): no key,
// no hash, no path.
type Safe struct {
	VerificationMethod string
	Issuer, Audience   string
	APIKeyHeader       string
	APIKeyCount        int
	StrictValidation   bool
	AllowedAlgorithms  []string
}

// Safe returns the config's safe view.
func (c Config) Safe() Safe {
	c = c.WithDefaults()
	return Safe{VerificationMethod: c.JWTVerificationMethod, Issuer: c.JWTIssuer, Audience: c.JWTAudience,
		APIKeyHeader: c.APIKeyHeader, APIKeyCount: len(c.APIKeys), StrictValidation: *c.StrictValidation,
		AllowedAlgorithms: slices.Clone(c.AllowedAlgorithms)}
}
