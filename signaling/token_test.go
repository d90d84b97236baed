package signaling

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hlsedge/hlsedge/authz/token"
)

// signaling.jwt takes auth.jwt's key fields: a conference backend that signs with a key pair can publish it as
// a PEM file or a JWKS, and the kid picks the key.
func TestConferenceTokensVerifyWithPublicKeys(t *testing.T) {
	pubA, privA, _ := ed25519.GenerateKey(rand.Reader)
	pubB, privB, _ := ed25519.GenerateKey(rand.Reader)
	dir := t.TempDir()
	der, err := x509.MarshalPKIXPublicKey(pubA)
	if err != nil {
		t.Fatal(err)
	}
	pemFile := filepath.Join(dir, "a.pub")
	write(t, pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	jwks, _ := json.Marshal(map[string]any{"keys": []any{
		map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": "b", "x": base64.RawURLEncoding.EncodeToString(pubB)},
	}})
	jwksFile := filepath.Join(dir, "jwks.json")
	write(t, jwksFile, jwks)

	now := time.Unix(1_700_000_000, 0)
	signed := func(kid string, key ed25519.PrivateKey, exp time.Time) string {
		tk := jwt.NewWithClaims(jwt.SigningMethodEdDSA, tokenClaimsFor(alice, "r", "c", exp))
		tk.Header["kid"] = kid
		s, err := tk.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	f := func(name string, keys token.JWTConfig, tok string, want error) {
		t.Helper()
		cfg := baseConfig()
		cfg.JWT = keys
		cfg.JWT.Issuer = testIss
		cfg.SetDefaults()
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		v, err := newVerifier(&cfg.JWT, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer v.close()
		g, err := v.verify(tok, now)
		if !errors.Is(err, want) || (err == nil && g.Room != "r") {
			t.Errorf("%s: %+v %v, want %v", name, g, err, want)
		}
	}
	pemKeys := token.JWTConfig{Algorithms: []string{"EdDSA"}, PublicKeys: []token.PublicKeyConfig{{File: pemFile}}}
	jwksKeys := token.JWTConfig{Algorithms: []string{"EdDSA"}, JWKSFile: jwksFile}
	hour := now.Add(time.Hour)
	f("pem", pemKeys, signed("any", privA, hour), nil)
	f("pem, other key", pemKeys, signed("any", privB, hour), ErrSignature)
	f("jwks", jwksKeys, signed("b", privB, hour), nil)
	f("jwks, unknown kid", jwksKeys, signed("a", privA, hour), token.ErrUnknownKey)
	// The leeway is auth.jwt's default: 30 s.
	f("expired within the leeway", jwksKeys, signed("b", privB, now.Add(-10*time.Second)), nil)
	f("expired past the leeway", jwksKeys, signed("b", privB, now.Add(-time.Minute)), ErrExpired)
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
