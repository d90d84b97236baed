package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWTMint describes a test JWT. The claim names are the defaults (streams, ip, sub, max_sessions) unless Claims
// renames them, matching the verifier's ClaimNames.
type JWTMint struct {
	// Alg is HS256/384/512, RS*, PS*, ES256/384/512 or EdDSA.
	Alg string
	// Key is the HMAC secret ([]byte) for HS*, or a private key (from ParsePrivateKeyPEM) of the matching type.
	Key any
	// KeyID becomes the `kid` header when set.
	KeyID string
	// Streams are the channel names or globs the token opens.
	Streams []string
	// Subject is the user id (`sub`).
	Subject string
	// IP binds the token to a client address when valid.
	IP netip.Addr
	// Issuer and Audience, when set, become `iss` and `aud`.
	Issuer, Audience string
	// MaxSessions, when positive, becomes the max_sessions claim.
	MaxSessions int
	// Now and TTL set iat, nbf and exp. A zero Now means time.Now().
	Now time.Time
	TTL time.Duration
	// Claims renames the access claims; zero fields keep the defaults.
	Claims ClaimNames
}

// MintJWT signs a JWT. The key must be of the algorithm's own type, as the verifier demands.
func MintJWT(m JWTMint) (string, error) {
	method := jwt.GetSigningMethod(m.Alg)
	fam := algFamilyOf(m.Alg)
	if method == nil || fam == famNone {
		return "", fmt.Errorf("%w: %q", ErrUnsupportedAlgo, m.Alg)
	}
	if err := keyMatches(fam, m.Key); err != nil {
		return "", err
	}
	if m.TTL <= 0 {
		return "", errors.New("jwt ttl must be greater than zero")
	}
	now := m.Now
	if now.IsZero() {
		now = time.Now()
	}
	access := AccessConfig{Claims: m.Claims}
	access.SetDefaults()
	names := access.Claims
	c := jwt.MapClaims{
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(m.TTL).Unix(),
	}
	if len(m.Streams) > 0 {
		c[names.Streams] = m.Streams
	}
	if m.Subject != "" {
		c[names.User] = m.Subject
	}
	if m.IP.IsValid() {
		c[names.IP] = m.IP.Unmap().String()
	}
	if m.MaxSessions > 0 {
		c[names.MaxSessions] = m.MaxSessions
	}
	if m.Issuer != "" {
		c["iss"] = m.Issuer
	}
	if m.Audience != "" {
		c["aud"] = m.Audience
	}
	t := jwt.NewWithClaims(method, c)
	if m.KeyID != "" {
		t.Header["kid"] = m.KeyID
	}
	return t.SignedString(m.Key)
}

func keyMatches(fam algFamily, key any) error {
	ok := false
	switch k := key.(type) {
	case []byte:
		ok = fam == famHMAC && len(k) > 0
	case *rsa.PrivateKey:
		ok = fam == famRSA
	case *ecdsa.PrivateKey:
		ok = fam == famP256 && k.Curve == elliptic.P256() ||
			fam == famP384 && k.Curve == elliptic.P384() ||
			fam == famP521 && k.Curve == elliptic.P521()
	case ed25519.PrivateKey:
		ok = fam == famEd25519
	}
	if !ok {
		return fmt.Errorf("%w: %T", ErrKeyAlgMismatch, key)
	}
	return nil
}
