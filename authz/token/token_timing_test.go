package token

import (
	"testing"
	"time"
)

// Goals (issue 4): edge-token verify <= 1 us and 0 allocs; cold JWT costs recorded.
// Run: go test -run '^$' -bench . -benchmem ./authz/token/

func BenchmarkEdgeTokenVerify(b *testing.B) {
	s, _ := NewEdgeSigner([]byte(edgeSecret))
	tok, _ := s.AppendToken(nil, &EdgeToken{Channel: "a001", Expires: testNow.Add(time.Hour).Unix(), IP: clientIP, SessionID: 42, UserID: "user-42"})
	ch := []byte("a001")
	var c EdgeClaims
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Verify(tok, ch, clientIP, testNow.Unix(), &c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSecureTokenVerify(b *testing.B) {
	v, err := NewSecureTokenVerifier(&SecureTokenConfig{Secret: stSecret})
	if err != nil {
		b.Fatal(err)
	}
	tok, ch := []byte(goldenST), []byte("bbc")
	var out Verified
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(tok, ch, clientIP, testNow, &out); err != nil {
			b.Fatal(err)
		}
	}
}

func benchJWT(b *testing.B, keys JWTConfig, tok string) {
	v := newAccess(b, keys, AccessConfig{})
	t, ch := []byte(tok), []byte("a001")
	b.ReportAllocs()
	for b.Loop() {
		var out Verified
		if err := v.Verify(t, ch, clientIP, testNow, &out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJWTColdHS256(b *testing.B) {
	tok, err := MintJWT(JWTMint{Alg: "HS256", Key: hmacSecret, Streams: []string{"a001"}, Subject: "user-42", Now: testNow, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	benchJWT(b, JWTConfig{Algorithms: []string{"HS256"}, Secret: string(hmacSecret)}, tok)
}

func BenchmarkJWTColdES256(b *testing.B) {
	tok, err := MintJWT(JWTMint{Alg: "ES256", Key: privKey(b, "ec256.key"), KeyID: "ec1", Streams: []string{"a001"}, Subject: "user-42", Now: testNow, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	benchJWT(b, JWTConfig{Algorithms: []string{"ES256"}, PublicKeys: []PublicKeyConfig{{File: keyPath("ec256.pub"), KeyID: "ec1"}}}, tok)
}

func BenchmarkJWTColdRS256(b *testing.B) {
	tok, err := MintJWT(JWTMint{Alg: "RS256", Key: privKey(b, "rsa.key"), Streams: []string{"a001"}, Now: testNow, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	benchJWT(b, JWTConfig{Algorithms: []string{"RS256"}, PublicKeys: []PublicKeyConfig{{File: keyPath("rsa.pub")}}}, tok)
}
