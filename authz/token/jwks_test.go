package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func jwkOf(t testing.TB, pub crypto.PublicKey, kid, alg string) map[string]any {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	m := map[string]any{"kid": kid}
	if alg != "" {
		m["alg"] = alg
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", enc(k.N.Bytes()), enc(big.NewInt(int64(k.E)).Bytes())
	case *ecdsa.PublicKey:
		b, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		size := (len(b) - 1) / 2
		m["kty"], m["crv"], m["x"], m["y"] = "EC", k.Curve.Params().Name, enc(b[1:1+size]), enc(b[1+size:])
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", enc(k)
	default:
		t.Fatalf("no jwk for %T", pub)
	}
	return m
}

func jwksDoc(t testing.TB, keys ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestJWKSFile(t *testing.T) {
	rsaKey := privKey(t, "rsa.key")
	ecKey := privKey(t, "ec256.key")
	edKey := privKey(t, "ed25519.key")
	weak := privKey(t, "rsa1024.key")
	doc := jwksDoc(t,
		jwkOf(t, rsaKey.Public(), "rsa1", "RS256"),
		jwkOf(t, ecKey.Public(), "ec1", ""),
		jwkOf(t, edKey.Public(), "ed1", "EdDSA"),
		jwkOf(t, weak.Public(), "weak", ""),
		map[string]any{"kty": "oct", "kid": "hmac", "k": base64.RawURLEncoding.EncodeToString(hmacSecret)},
		with(jwkOf(t, privKey(t, "rsa-other.key").Public(), "enc1", ""), "use", "enc"),
		jwkOf(t, privKey(t, "rsa-other.key").Public(), "mismatch", "ES256"),
		map[string]any{"kty": "EC", "kid": "offcurve", "crv": "P-256", "x": base64.RawURLEncoding.EncodeToString(make([]byte, 32)), "y": base64.RawURLEncoding.EncodeToString(make([]byte, 32))},
	)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	v := newAccess(t, JWTConfig{Algorithms: []string{"RS256", "PS256", "ES256", "EdDSA", "HS256"}, Secret: string(hmacSecret), JWKSFile: path}, AccessConfig{})
	ks := v.jwt.src.keys()
	if ks.len() != 3 {
		t.Fatalf("want the 3 usable keys, got %d", ks.len())
	}
	claims := with(baseClaims(), "iss", nil, "aud", nil)
	f := func(name string, tok string, status int, reason string) {
		t.Helper()
		if _, st, got := verifyAt(v, tok, "a001", clientIP); st != status || !strings.Contains(got, reason) {
			t.Errorf("%s: got %d %q, want %d %q", name, st, got, status, reason)
		}
	}
	sign := func(alg, kid string, key any) string {
		m := jwtMethod(alg)
		h := map[string]any{"alg": alg}
		if kid != "" {
			h["kid"] = kid
		}
		return rawJWT(t, h, claims, m, key)
	}
	f("rs256 rsa1", sign("RS256", "rsa1", rsaKey), http.StatusOK, "ok")
	f("ps256 on an RS256-pinned jwk", sign("PS256", "rsa1", rsaKey), http.StatusForbidden, "key type does not match")
	f("es256 ec1", sign("ES256", "ec1", ecKey), http.StatusOK, "ok")
	f("es256 no kid", sign("ES256", "", ecKey), http.StatusOK, "ok")
	f("eddsa ed1", sign("EdDSA", "ed1", edKey), http.StatusOK, "ok")
	f("weak key skipped", sign("RS256", "weak", weak), http.StatusForbidden, "unknown key id")
	f("oct jwk never an hmac key", sign("HS256", "hmac", []byte("attacker-chosen-secret-0123456789ab")), http.StatusForbidden, "bad signature")
	f("enc key skipped", sign("RS256", "enc1", privKey(t, "rsa-other.key")), http.StatusForbidden, "unknown key id")
	f("mismatched jwk skipped", sign("RS256", "mismatch", privKey(t, "rsa-other.key")), http.StatusForbidden, "unknown key id")
}

// A JWKS URL: loaded at start, refreshed in the background, and fetched early when a token names an unknown
// kid, so a key rotation at the issuer needs no edge restart. The test follows the background loads as they
// happen rather than the clock.
func TestJWKSURLRotation(t *testing.T) {
	keyA, keyB := privKey(t, "rsa.key"), privKey(t, "rsa-other.key")
	var (
		mu   sync.Mutex
		doc  = jwksDoc(t, jwkOf(t, keyA.Public(), "a", ""))
		down atomic.Bool
	)
	// Down until the test has seen the edge refuse without keys: a background load (every second) on a machine
	// slow to get there must not bring the keys first.
	down.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		w.Write(doc)
	}))
	defer srv.Close()
	keys := JWTConfig{Algorithms: []string{"RS256"}, JWKSURL: srv.URL + "/jwks.json", JWKSRefresh: time.Second, JWKSTimeout: 2 * time.Second}
	keys.SetDefaults()
	loaded := make(chan struct{}, 1)
	jv, err := newJWTVerifier(&keys, nil, loaded)
	if err != nil {
		t.Fatal(err)
	}
	defer jv.Close()
	v := &AccessVerifier{jwt: jv}
	v.cfg.SetDefaults()
	verifies := func(tok string) bool {
		_, st, _ := verifyAt(v, tok, "a001", clientIP)
		return st == http.StatusOK
	}
	// nextLoadUntil waits for background loads until cond holds after one; the loop guarantees there is a next.
	nextLoadUntil := func(what string, cond func() bool) {
		t.Helper()
		for {
			select {
			case <-loaded:
				if cond() {
					return
				}
			case <-time.After(time.Minute):
				t.Fatalf("no background load gave %s", what)
			}
		}
	}
	claims := with(baseClaims(), "iss", nil, "aud", nil)
	tokA := rawJWT(t, map[string]any{"alg": "RS256", "kid": "a"}, claims, jwtMethod("RS256"), keyA)
	tokB := rawJWT(t, map[string]any{"alg": "RS256", "kid": "b"}, claims, jwtMethod("RS256"), keyB)
	// The issuer was down at start: the edge started anyway and refuses until the keys arrive.
	if verifies(tokA) {
		t.Fatal("allowed without keys")
	}
	down.Store(false)
	nextLoadUntil("the first key set", func() bool { return verifies(tokA) })
	if _, st, reason := verifyAt(v, tokB, "a001", clientIP); st != http.StatusForbidden || !strings.Contains(reason, "unknown key id") {
		t.Fatalf("rotated key before the issuer published it: %d %q", st, reason)
	}
	mu.Lock()
	doc = jwksDoc(t, jwkOf(t, keyB.Public(), "b", ""))
	mu.Unlock()
	nextLoadUntil("the rotated key set", func() bool { return verifies(tokB) })
	// The old key is gone with the old set.
	if verifies(tokA) {
		t.Fatal("retired key still verifies")
	}
}

// A JWKS URL that hangs must not hang the edge's start: the timeout bounds it.
func TestJWKSURLTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	done := make(chan error, 1)
	go func() {
		v, err := buildAccess(JWTConfig{Algorithms: []string{"ES256"}, JWKSURL: srv.URL, JWKSTimeout: 100 * time.Millisecond}, AccessConfig{})
		if err == nil {
			v.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("New did not return: the JWKS timeout is not applied")
	}
}

func TestParseJWKSRejects(t *testing.T) {
	f := func(doc string, wantKeys int, wantErr bool) {
		t.Helper()
		keys, _, err := parseJWKS([]byte(doc))
		if (err != nil) != wantErr || len(keys) != wantKeys {
			t.Errorf("%s: %d keys, err %v", doc, len(keys), err)
		}
	}
	f(`{`, 0, true)
	f(`{"keys":{}}`, 0, true)
	f(`{"keys":[]}`, 0, false)
	f(`{"keys":[1,"x",null,{}]}`, 0, false)
	f(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`, 0, false) // tiny modulus
	f(`{"keys":[{"kty":"RSA","n":"`+strings.Repeat("A", 400)+`","e":"AAAAAAE"}]}`, 0, false)
	f(`{"keys":[{"kty":"OKP","crv":"X25519","x":"`+base64.RawURLEncoding.EncodeToString(make([]byte, 32))+`"}]}`, 0, false)
	f(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}`, 0, false)
}

func jwtMethod(alg string) jwt.SigningMethod { return jwt.GetSigningMethod(alg) }
