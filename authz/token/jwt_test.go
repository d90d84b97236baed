package token

import (
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// rawJWT builds a token from an arbitrary header and claims, signed with method and key (nil key: empty
// signature), so that tests can forge what a library would refuse to produce.
func rawJWT(t testing.TB, header, claims map[string]any, method jwt.SigningMethod, key any) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	if key == nil {
		return signing + "."
	}
	sig, err := method.Sign(signing, key)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + enc.EncodeToString(sig)
}

func baseClaims() map[string]any {
	return map[string]any{
		"sub":     "user-42",
		"streams": []any{"a001", "sport/*"},
		"exp":     testNow.Add(time.Hour).Unix(),
		"nbf":     testNow.Add(-time.Minute).Unix(),
		"iss":     "https://tv.example.com",
		"aud":     "hlsedge",
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// jwtKeys is an auth.jwt with every key family, as the authorizer's tests configure it.
func jwtKeys() JWTConfig {
	zero := time.Duration(0)
	return JWTConfig{
		Algorithms: []string{"HS256", "RS256", "PS256", "ES256", "EdDSA"},
		Secret:     string(hmacSecret),
		PublicKeys: []PublicKeyConfig{
			{File: keyPath("rsa.pub"), KeyID: "rsa1"},
			{File: keyPath("ec256.pub"), KeyID: "ec1"},
			{File: keyPath("ed25519.pub"), KeyID: "ed1"},
		},
		Issuer:   "https://tv.example.com",
		Audience: "hlsedge",
		Leeway:   &zero,
	}
}

// verifyAt verifies tok for channel from ip at testNow, as the authorizer would.
func verifyAt(v *AccessVerifier, tok, channel string, ip netip.Addr) (Verified, int, string) {
	var out Verified
	err := v.Verify([]byte(tok), []byte(channel), ip, testNow, &out)
	st, reason := verdict(err)
	return out, st, reason
}

func TestJWTVerifier(t *testing.T) {
	v := newAccess(t, jwtKeys(), AccessConfig{})
	rsaKey := privKey(t, "rsa.key").(*rsa.PrivateKey)
	otherRSA := privKey(t, "rsa-other.key").(*rsa.PrivateKey)
	ecKey := privKey(t, "ec256.key")
	edKey := privKey(t, "ed25519.key").(ed25519.PrivateKey)
	rsaPubPEM := readFile(t, "rsa.pub")
	hs := map[string]any{"alg": "HS256", "typ": "JWT"}
	rs := map[string]any{"alg": "RS256", "typ": "JWT", "kid": "rsa1"}
	es := map[string]any{"alg": "ES256", "kid": "ec1"}
	ed := map[string]any{"alg": "EdDSA", "kid": "ed1"}

	valid := rawJWT(t, hs, baseClaims(), jwt.SigningMethodHS256, hmacSecret)
	parts := strings.Split(valid, ".")
	tamperedClaims, _ := json.Marshal(with(baseClaims(), "streams", "*"))
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(tamperedClaims) + "." + parts[2]

	f := func(name, tok, channel string, status int, reason string) {
		t.Helper()
		_, st, got := verifyAt(v, tok, channel, clientIP)
		if st != status || !strings.Contains(got, reason) {
			t.Errorf("%s: got %d %q, want %d %q", name, st, got, status, reason)
		}
		if strings.Contains(got, tok) {
			t.Errorf("%s: reason leaks the token", name)
		}
	}
	ok, forbidden, gone := http.StatusOK, http.StatusForbidden, http.StatusGone

	f("hs256", valid, "a001", ok, "ok")
	f("glob", valid, "sport/tennis", ok, "ok")
	f("rs256", rawJWT(t, rs, baseClaims(), jwt.SigningMethodRS256, rsaKey), "a001", ok, "ok")
	f("ps256", rawJWT(t, with(rs, "alg", "PS256"), baseClaims(), jwt.SigningMethodPS256, rsaKey), "a001", ok, "ok")
	f("es256", rawJWT(t, es, baseClaims(), jwt.SigningMethodES256, ecKey), "a001", ok, "ok")
	f("eddsa", rawJWT(t, ed, baseClaims(), jwt.SigningMethodEdDSA, edKey), "a001", ok, "ok")
	f("rs256 without kid", rawJWT(t, with(rs, "kid", nil), baseClaims(), jwt.SigningMethodRS256, rsaKey), "a001", ok, "ok")

	// RFC 8725 attacks.
	f("alg none", rawJWT(t, map[string]any{"alg": "none"}, baseClaims(), nil, nil), "a001", forbidden, "algorithm not allowed")
	f("alg None", rawJWT(t, map[string]any{"alg": "None"}, baseClaims(), nil, nil), "a001", forbidden, "algorithm not allowed")
	f("alg missing", rawJWT(t, map[string]any{"typ": "JWT"}, baseClaims(), nil, nil), "a001", forbidden, "algorithm not allowed")
	f("hs256 keyed with the rsa public pem", rawJWT(t, hs, baseClaims(), jwt.SigningMethodHS256, rsaPubPEM), "a001", forbidden, "bad signature")
	f("hs256 keyed with the rsa public pem, kid of the rsa key", rawJWT(t, with(hs, "kid", "rsa1"), baseClaims(), jwt.SigningMethodHS256, rsaPubPEM), "a001", forbidden, "bad signature")
	f("rs256 with the ec kid", rawJWT(t, with(rs, "kid", "ec1"), baseClaims(), jwt.SigningMethodRS256, rsaKey), "a001", forbidden, "key type does not match")
	f("unknown kid", rawJWT(t, with(rs, "kid", "nope"), baseClaims(), jwt.SigningMethodRS256, rsaKey), "a001", forbidden, "unknown key id")
	f("injected kid", rawJWT(t, with(rs, "kid", "../../../../dev/null' OR 1=1 --"), baseClaims(), jwt.SigningMethodRS256, otherRSA), "a001", forbidden, "unknown key id")
	f("kid not a string", rawJWT(t, with(rs, "kid", 7), baseClaims(), jwt.SigningMethodRS256, rsaKey), "a001", forbidden, "malformed")
	f("embedded jwk of the attacker", rawJWT(t, with(rs, "kid", nil, "jwk", map[string]any{"kty": "RSA", "n": base64.RawURLEncoding.EncodeToString(otherRSA.N.Bytes()), "e": "AQAB"}), baseClaims(), jwt.SigningMethodRS256, otherRSA), "a001", forbidden, "bad signature")
	f("jku header", rawJWT(t, with(rs, "kid", nil, "jku", "http://127.0.0.1:1/jwks.json"), baseClaims(), jwt.SigningMethodRS256, otherRSA), "a001", forbidden, "bad signature")
	f("crit header", rawJWT(t, with(hs, "crit", []any{"b64"}, "b64", false), baseClaims(), jwt.SigningMethodHS256, hmacSecret), "a001", forbidden, "malformed")
	f("tampered payload", tampered, "b002", forbidden, "bad signature")
	f("other secret", rawJWT(t, hs, baseClaims(), jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef0123")), "a001", forbidden, "bad signature")
	f("es384 not allowed", rawJWT(t, map[string]any{"alg": "ES384"}, baseClaims(), jwt.SigningMethodES384, privKey(t, "ec384.key")), "a001", forbidden, "algorithm not allowed")
	f("hs512 not allowed", rawJWT(t, map[string]any{"alg": "HS512"}, baseClaims(), jwt.SigningMethodHS512, hmacSecret), "a001", forbidden, "algorithm not allowed")

	// Claims.
	f("expired", rawJWT(t, hs, with(baseClaims(), "exp", testNow.Add(-time.Second).Unix()), jwt.SigningMethodHS256, hmacSecret), "a001", gone, "token expired")
	f("expires now", rawJWT(t, hs, with(baseClaims(), "exp", testNow.Unix()), jwt.SigningMethodHS256, hmacSecret), "a001", gone, "token expired")
	f("expired and forged", rawJWT(t, hs, with(baseClaims(), "exp", testNow.Add(-time.Hour).Unix()), jwt.SigningMethodHS256, []byte("forged-forged-forged-forged-forged")), "a001", forbidden, "bad signature")
	f("no exp", rawJWT(t, hs, with(baseClaims(), "exp", nil), jwt.SigningMethodHS256, hmacSecret), "a001", forbidden, "no expiry")
	f("exp a string", rawJWT(t, hs, with(baseClaims(), "exp", "tomorrow"), jwt.SigningMethodHS256, hmacSecret), "a001", forbidden, "malformed claim")
	f("nbf future", rawJWT(t, hs, with(baseClaims(), "nbf", testNow.Add(time.Minute).Unix()), jwt.SigningMethodHS256, hmacSecret), "a001", forbidden, "not valid yet")
	f("iat a year ahead", rawJWT(t, hs, with(baseClaims(), "iat", testNow.AddDate(1, 0, 0).Unix(), "exp", testNow.AddDate(1, 0, 1).Unix()), jwt.SigningMethodHS256, hmacSecret), "a001", forbidden, "issued in the future")
	f("iat a string", rawJWT(t, hs, with(baseClaims(), "iat", "now"), jwt.SigningMethodHS256, hmacSecret), "a001", forbidden, "malformed claim")
	f("iat past", rawJWT(t, hs, with(baseClaims(), "iat", testNow.Add(-time.Hour).Unix()), jwt.SigningMethodHS256, hmacSecret), "a001", ok, "ok")
	f("wrong iss", rawJWT(t, hs, with(baseClaims(), "iss", "https://evil.example"), jwt.SigningMethodHS256, hmacSecret), "a001", forbidden, "wrong issuer")
	f("no iss", rawJWT(t, hs, with(baseClaims(), "iss", nil), jwt.SigningMethodHS256, hmacSecret), "a001", forbidden, "wrong issuer")
	f("wrong aud", rawJWT(t, hs, with(baseClaims(), "aud", "socketio"), jwt.SigningMethodHS256, hmacSecret), "a001", forbidden, "wrong audience")
	f("aud list", rawJWT(t, hs, with(baseClaims(), "aud", []any{"socketio", "hlsedge"}), jwt.SigningMethodHS256, hmacSecret), "a001", ok, "ok")
	f("other channel", valid, "b002", forbidden, "not valid for this channel")
	f("glob does not cross prefix", valid, "sportx", forbidden, "not valid for this channel")
	f("streams string", rawJWT(t, hs, with(baseClaims(), "streams", "a001"), jwt.SigningMethodHS256, hmacSecret), "a001", ok, "ok")
	f("streams star", rawJWT(t, hs, with(baseClaims(), "streams", "*"), jwt.SigningMethodHS256, hmacSecret), "zzz", ok, "ok")
	f("streams missing", rawJWT(t, hs, with(baseClaims(), "streams", nil), jwt.SigningMethodHS256, hmacSecret), "a001", forbidden, "grants no channels")
	f("streams null", rawJWT(t, hs, with(baseClaims(), "streams", json.RawMessage("null")), jwt.SigningMethodHS256, hmacSecret), "a001", forbidden, "grants no channels")
	f("streams number", rawJWT(t, hs, with(baseClaims(), "streams", 5), jwt.SigningMethodHS256, hmacSecret), "a001", forbidden, "malformed claim")
	f("ip bound", rawJWT(t, hs, with(baseClaims(), "ip", clientIP.String()), jwt.SigningMethodHS256, hmacSecret), "a001", ok, "ok")
	f("ip cidr", rawJWT(t, hs, with(baseClaims(), "ip", "203.0.113.0/24"), jwt.SigningMethodHS256, hmacSecret), "a001", ok, "ok")
	f("other ip", rawJWT(t, hs, with(baseClaims(), "ip", otherIP.String()), jwt.SigningMethodHS256, hmacSecret), "a001", forbidden, "another client ip")
	f("ip garbage", rawJWT(t, hs, with(baseClaims(), "ip", "not-an-ip"), jwt.SigningMethodHS256, hmacSecret), "a001", forbidden, "malformed claim")
	f("sub too long", rawJWT(t, hs, with(baseClaims(), "sub", strings.Repeat("u", 256)), jwt.SigningMethodHS256, hmacSecret), "a001", forbidden, "user id too long")
	f("max_sessions fraction", rawJWT(t, hs, with(baseClaims(), "max_sessions", 1.5), jwt.SigningMethodHS256, hmacSecret), "a001", forbidden, "malformed claim")

	// Malformed shapes.
	f("two dots garbage", "a.b.c", "a001", forbidden, "malformed")
	f("empty parts", "..", "a001", forbidden, "malformed")
	f("header not json", base64.RawURLEncoding.EncodeToString([]byte("{"))+".e30.", "a001", forbidden, "malformed")
}

func TestJWTVerifiedCarriesClaims(t *testing.T) {
	v := newAccess(t, jwtKeys(), AccessConfig{})
	tok := rawJWT(t, map[string]any{"alg": "HS256"}, with(baseClaims(), "max_sessions", 3, "ip", clientIP.String()), jwt.SigningMethodHS256, hmacSecret)
	out, st, reason := verifyAt(v, tok, "a001", clientIP)
	want := Verified{Kind: KindJWT, UserID: "user-42", Fingerprint: FingerprintOf([]byte(tok)), Expires: testNow.Add(time.Hour).Unix(),
		Until: testNow.Add(time.Hour).UnixNano(), MaxSessions: 3, IPBound: true, Key: RefOf(hmacSecret)}
	if st != http.StatusOK || out != want {
		t.Fatalf("%d %q: %+v, want %+v", st, reason, out, want)
	}
}

// With only RS256 allowed, the classic confusion token (HS256 keyed with the public PEM) is refused before any
// key is looked at.
func TestJWTAlgorithmConfusionRSOnly(t *testing.T) {
	v := newAccess(t, JWTConfig{Algorithms: []string{"RS256"}, PublicKeys: []PublicKeyConfig{{File: keyPath("rsa.pub")}}}, AccessConfig{})
	claims := with(baseClaims(), "iss", nil, "aud", nil)
	tok := rawJWT(t, map[string]any{"alg": "HS256"}, claims, jwt.SigningMethodHS256, readFile(t, "rsa.pub"))
	if _, st, reason := verifyAt(v, tok, "a001", clientIP); st != http.StatusForbidden || !strings.Contains(reason, "algorithm not allowed") {
		t.Fatalf("got %d %q", st, reason)
	}
	good := rawJWT(t, map[string]any{"alg": "RS256", "kid": "whatever"}, claims, jwt.SigningMethodRS256, privKey(t, "rsa.key"))
	if _, st, reason := verifyAt(v, good, "a001", clientIP); st != http.StatusOK {
		t.Fatalf("unnamed pem key must verify any kid: %d %q", st, reason)
	}
}

func TestJWTLeeway(t *testing.T) {
	keys := jwtKeys()
	l := 30 * time.Second
	keys.Leeway = &l
	v := newAccess(t, keys, AccessConfig{})
	f := func(name string, claims map[string]any, want int) {
		t.Helper()
		tok := rawJWT(t, map[string]any{"alg": "HS256"}, claims, jwt.SigningMethodHS256, hmacSecret)
		if _, st, reason := verifyAt(v, tok, "a001", clientIP); st != want {
			t.Errorf("%s: got %d %q, want %d", name, st, reason, want)
		}
	}
	f("expired within leeway", with(baseClaims(), "exp", testNow.Add(-10*time.Second).Unix()), http.StatusOK)
	f("expired past leeway", with(baseClaims(), "exp", testNow.Add(-31*time.Second).Unix()), http.StatusGone)
	f("nbf within leeway", with(baseClaims(), "nbf", testNow.Add(10*time.Second).Unix()), http.StatusOK)
	f("nbf past leeway", with(baseClaims(), "nbf", testNow.Add(31*time.Second).Unix()), http.StatusForbidden)
	// RFC 8725: a token issued in the future beyond the clock skew is refused, like one not yet valid.
	f("iat within leeway", with(baseClaims(), "iat", testNow.Add(30*time.Second).Unix()), http.StatusOK)
	f("iat past leeway", with(baseClaims(), "iat", testNow.Add(31*time.Second).Unix()), http.StatusForbidden)
}

func TestJWTWeakRSAKeyRefused(t *testing.T) {
	_, err := buildAccess(JWTConfig{Algorithms: []string{"RS256"}, PublicKeys: []PublicKeyConfig{{File: keyPath("rsa1024.pub")}}}, AccessConfig{})
	if err == nil || !strings.Contains(err.Error(), "2048") {
		t.Fatalf("got %v", err)
	}
	_, err = buildAccess(JWTConfig{Algorithms: []string{"RS256"}, PublicKeys: []PublicKeyConfig{{File: keyPath("rsa.key")}}}, AccessConfig{})
	if err == nil || !strings.Contains(err.Error(), "private key") {
		t.Fatalf("got %v", err)
	}
}

func TestMintJWTVerifies(t *testing.T) {
	v := newAccess(t, JWTConfig{
		Algorithms: []string{"HS256", "RS256", "ES256", "EdDSA"},
		Secret:     string(hmacSecret),
		PublicKeys: []PublicKeyConfig{{File: keyPath("rsa.pub")}, {File: keyPath("ec256.pub")}, {File: keyPath("ed25519.pub")}},
	}, AccessConfig{})
	f := func(alg string, key any) {
		t.Helper()
		tok, err := MintJWT(JWTMint{Alg: alg, Key: key, Streams: []string{"a001"}, Subject: "u1", IP: clientIP, Now: testNow, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if out, st, reason := verifyAt(v, tok, "a001", clientIP); st != http.StatusOK || out.UserID != "u1" {
			t.Errorf("%s: %d %q", alg, st, reason)
		}
		if _, st, reason := verifyAt(v, tok, "a001", otherIP); st != http.StatusForbidden {
			t.Errorf("%s from another ip: %d %q", alg, st, reason)
		}
	}
	f("HS256", hmacSecret)
	f("RS256", privKey(t, "rsa.key"))
	f("ES256", privKey(t, "ec256.key"))
	f("EdDSA", privKey(t, "ed25519.key"))
	if _, err := MintJWT(JWTMint{Alg: "ES256", Key: privKey(t, "rsa.key"), TTL: time.Hour}); err == nil {
		t.Error("ES256 with an RSA key must be refused")
	}
	if _, err := MintJWT(JWTMint{Alg: "none", Key: hmacSecret, TTL: time.Hour}); err == nil {
		t.Error("alg none must be refused")
	}
}
