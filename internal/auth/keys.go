package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// KeyPair is a generated signing key: PEM files and a JWKS of the public
// half.
type KeyPair struct {
	Private, Public, JWKS []byte
	KeyID                 string
}

// GenerateKeyPair makes an RS256 (RSA of bits, at least 2048) or ES256
// (P-256) key pair.
func GenerateKeyPair(alg string, bits int) (KeyPair, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case "RS256":
		if bits < 2048 {
			return KeyPair{}, fmt.Errorf("RSA key size %d: use at least 2048 bits", bits)
		}
		priv, err = rsa.GenerateKey(rand.Reader, bits)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return KeyPair{}, fmt.Errorf("algorithm %q: use RS256 or ES256", alg)
	}
	if err != nil {
		return KeyPair{}, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return KeyPair{}, fmt.Errorf("encode private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return KeyPair{}, fmt.Errorf("encode public key: %w", err)
	}
	kid := keyID(pubDER)
	jwk, err := jwkset.NewJWKFromKey(priv.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
		ALG: jwkset.ALG(alg), KID: kid, USE: jwkset.UseSig}})
	if err != nil {
		return KeyPair{}, fmt.Errorf("encode JWKS: %w", err)
	}
	set := jwkset.NewMemoryStorage()
	if err := set.KeyWrite(context.Background(), jwk); err != nil {
		return KeyPair{}, fmt.Errorf("encode JWKS: %w", err)
	}
	jwks, err := set.JSONPublic(context.Background())
	if err != nil {
		return KeyPair{}, fmt.Errorf("encode JWKS: %w", err)
	}
	return KeyPair{
		Private: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		Public:  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}),
		JWKS:    jwks, KeyID: kid,
	}, nil
}

// keyID names a public key: the first 16 hex digits of the SHA-256 of its
// DER encoding. A token signed by GenerateToken carries it as kid.
func keyID(pubDER []byte) string {
	sum := sha256.Sum256(pubDER)
	return hex.EncodeToString(sum[:8])
}

// ParsePublicKeyPEM reads an RSA or P-256 EC public key (PKIX, or PKCS#1
// for RSA).
func ParsePublicKeyPEM(raw []byte) (any, error) {
	if k, err := jwt.ParseRSAPublicKeyFromPEM(raw); err == nil {
		return k, nil
	}
	if k, err := jwt.ParseECPublicKeyFromPEM(raw); err == nil {
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("EC key on %s: ES256 needs P-256", k.Curve.Params().Name)
		}
		return k, nil
	}
	return nil, errors.New("not a PEM RSA or P-256 EC public key")
}

// ParsePrivateKeyPEM reads an RSA or P-256 EC private key and says which
// algorithm it signs with.
func ParsePrivateKeyPEM(raw []byte) (crypto.Signer, string, error) {
	if k, err := jwt.ParseRSAPrivateKeyFromPEM(raw); err == nil {
		return k, "RS256", nil
	}
	if k, err := jwt.ParseECPrivateKeyFromPEM(raw); err == nil {
		if k.Curve != elliptic.P256() {
			return nil, "", fmt.Errorf("EC key on %s: ES256 needs P-256", k.Curve.Params().Name)
		}
		return k, "ES256", nil
	}
	return nil, "", errors.New("not a PEM RSA or P-256 EC private key")
}

// TokenSpec is what GenerateToken signs.
type TokenSpec struct {
	Subject, Issuer, Audience string
	Permissions               []string
	// PermissionsClaim names the claim; empty means "permissions".
	PermissionsClaim string
	IssuedAt         time.Time
	TTL              time.Duration
}

// GenerateToken signs a JWT with a private key PEM (RS256 or ES256 by the
// key's kind), with kid naming the key as GenerateKeyPair's JWKS does.
func GenerateToken(privPEM []byte, spec TokenSpec) (string, error) {
	key, alg, err := ParsePrivateKeyPEM(privPEM)
	if err != nil {
		return "", err
	}
	if spec.Subject == "" || spec.Issuer == "" || spec.Audience == "" {
		return "", errors.New("a token needs a subject, an issuer and an audience")
	}
	if spec.TTL <= 0 {
		return "", fmt.Errorf("expiry %s: give a positive duration", spec.TTL)
	}
	if err := checkKnown(spec.Permissions); err != nil {
		return "", err
	}
	claim := spec.PermissionsClaim
	if claim == "" {
		claim = "permissions"
	}
	now := spec.IssuedAt
	if now.IsZero() {
		now = time.Now()
	}
	claims := jwt.MapClaims{
		"sub": spec.Subject, "iss": spec.Issuer, "aud": spec.Audience,
		"iat": now.Unix(), "exp": now.Add(spec.TTL).Unix(), claim: spec.Permissions,
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return "", fmt.Errorf("encode public key: %w", err)
	}
	t := jwt.NewWithClaims(jwt.GetSigningMethod(alg), claims)
	t.Header["kid"] = keyID(pubDER)
	return t.SignedString(key)
}

// NewAPIKey returns a new API key (32 random bytes, "tsk_" and base64url)
// and its hex SHA-256, the form the config file keeps.
func NewAPIKey() (key, sha string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("read random bytes: %w", err)
	}
	key = "tsk_" + base64.RawURLEncoding.EncodeToString(b)
	return key, HashAPIKey(key), nil
}

// HashAPIKey returns a key's hex SHA-256.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}
