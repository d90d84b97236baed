package token

import (
	"bytes"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// respellSig rewrites the last base64url character of tok's signature with other unused low bits: the
// decoded signature, and so its verification, stays the same.
func respellSig(t testing.TB, tok string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	sig := tok[strings.LastIndexByte(tok, '.')+1:]
	unused := map[int]int{2: 4, 3: 2}[len(sig)%4] // 1 or 2 bytes in the last group leave 4 or 2 bits unused
	if unused == 0 {
		t.Fatalf("signature of %d characters has no unused bits", len(sig))
	}
	i := strings.IndexByte(alphabet, tok[len(tok)-1])
	return tok[:len(tok)-1] + string(alphabet[i^(1<<unused-1)])
}

// highS turns an ES256 signature (r, s) into (r, n-s), which ECDSA verification also accepts.
func highS(t testing.TB, tok string) string {
	t.Helper()
	dot := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err != nil || len(sig) != 64 {
		t.Fatalf("not an ES256 signature: %v", err)
	}
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(elliptic.P256().Params().N, s)
	s.FillBytes(sig[32:])
	return tok[:dot+1] + base64.RawURLEncoding.EncodeToString(sig)
}

// Every spelling of one credential that a verifier accepts has that credential's fingerprint: bans, kicks and
// session limits key on it, so a respelling would otherwise escape them.
func TestFingerprintOneCredentialEverySpelling(t *testing.T) {
	v := newAccess(t, jwtKeys(), AccessConfig{})
	hs := rawJWT(t, map[string]any{"alg": "HS256", "typ": "JWT"}, baseClaims(), jwt.SigningMethodHS256, hmacSecret)
	es := rawJWT(t, map[string]any{"alg": "ES256", "kid": "ec1"}, baseClaims(), jwt.SigningMethodES256, privKey(t, "ec256.key"))
	st := newST(t, SecureTokenConfig{Secret: stSecret})

	jwtSame := func(name, orig, respelled string) {
		t.Helper()
		if respelled == orig {
			t.Fatalf("%s: not a respelling", name)
		}
		want, code, reason := verifyAt(v, orig, "a001", clientIP)
		if code != http.StatusOK {
			t.Fatalf("%s: original refused: %s", name, reason)
		}
		got, code, reason := verifyAt(v, respelled, "a001", clientIP)
		if code != http.StatusOK {
			t.Fatalf("%s: the respelling must verify for this test to mean anything: %s", name, reason)
		}
		if got.Fingerprint != want.Fingerprint || FingerprintOf([]byte(respelled)) != want.Fingerprint {
			t.Errorf("%s: %v and %v name one credential", name, got.Fingerprint, want.Fingerprint)
		}
	}
	jwtSame("unused bits of the signature's last character", hs, respellSig(t, hs))
	jwtSame("line feed in the signature", hs, hs[:len(hs)-5]+"\n"+hs[len(hs)-5:])
	jwtSame("carriage return and line feed in the signature", hs, hs[:len(hs)-9]+"\r\n"+hs[len(hs)-9:])
	jwtSame("ECDSA (r, n-s)", es, highS(t, es))

	// A different credential is a different fingerprint, even with the same claims under another key.
	other := rawJWT(t, map[string]any{"alg": "HS256", "typ": "JWT"}, with(baseClaims(), "sub", "user-43"), jwt.SigningMethodHS256, hmacSecret)
	if FingerprintOf([]byte(other)) == FingerprintOf([]byte(hs)) {
		t.Error("two credentials share a fingerprint")
	}

	// securetoken: the hash is hex in either case.
	lower := MintSecureToken(stSecret, "bbc", clientIP.String(), testNow.Unix()-300, testNow.Unix()+3600, goldenSalt)
	upper := strings.ToUpper(lower[:stHashLen]) + lower[stHashLen:]
	mixed := strings.ToUpper(lower[:7]) + lower[7:]
	var want Verified
	if _, code, reason := verifyST(st, lower, "bbc", clientIP, testNow); code != http.StatusOK {
		t.Fatal(reason)
	}
	want, _, _ = verifyST(st, lower, "bbc", clientIP, testNow)
	for _, tok := range []string{upper, mixed} {
		got, code, reason := verifyST(st, tok, "bbc", clientIP, testNow)
		if code != http.StatusOK {
			t.Fatalf("%q: %s", tok, reason)
		}
		if got.Fingerprint != want.Fingerprint || FingerprintOf([]byte(tok)) != want.Fingerprint {
			t.Errorf("%q: fingerprint %v, want %v", tok, got.Fingerprint, want.Fingerprint)
		}
	}
	// The lower-case spelling keeps the fingerprint it always had, so bans made before stay in force.
	if want.Fingerprint != plainFingerprint([]byte(lower)) {
		t.Error("a lower-case securetoken's fingerprint changed")
	}

	// An edge token has one spelling: the CR and LF a base64 decoder skips are refused.
	s, _ := NewEdgeSigner([]byte(edgeSecret))
	et, _ := s.AppendToken(nil, &EdgeToken{Channel: "a001", Expires: testNow.Add(time.Hour).Unix(), Root: 7})
	var c EdgeClaims
	if err := s.Verify(et, []byte("a001"), clientIP, testNow.Unix(), &c); err != nil || c.Root != 7 {
		t.Fatalf("edge token: %v, root %v", err, c.Root)
	}
	for _, bad := range [][]byte{
		append(append(append([]byte(nil), et[:10]...), '\n'), et[10:]...),
		append(append([]byte(nil), et...), '\r', '\n'),
	} {
		if err := s.Verify(bad, []byte("a001"), clientIP, testNow.Unix(), &c); err != ErrMalformed {
			t.Errorf("edge token with a line break: %v, want %v", err, ErrMalformed)
		}
	}
}

// plainFingerprint is the text's own fingerprint, as every token had before canonical forms.
func plainFingerprint(b []byte) Fingerprint {
	sum := sha256.Sum256(b)
	return Fingerprint(binary.BigEndian.Uint64(sum[:8]) | 1)
}

// A dotted token that is not a JWT (a middleware's own) keeps the fingerprint of its text: only the
// middleware knows what its spellings are.
func TestFingerprintOfNonJWTDots(t *testing.T) {
	f := func(a, b string, same bool) {
		t.Helper()
		if got := FingerprintOf([]byte(a)) == FingerprintOf([]byte(b)); got != same {
			t.Errorf("%q and %q: same fingerprint %v, want %v", a, b, got, same)
		}
	}
	f("user.session.r1", "user.session.r2", false)
	f("e30.e30.a", "e30.e30.b", true) // {} headers: a JWT's shape, whose signature is not the credential
	f("e30.e30.a", "e30.e31.a", false)
	f("abc", "ABC", false)
}

// FuzzFingerprint: any spelling that verifies is one of the credentials minted here (a fuzzer cannot forge a
// signature) and has that credential's fingerprint.
func FuzzFingerprint(f *testing.F) {
	v, err := buildAccess(jwtKeys(), AccessConfig{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(v.Close)
	st, err := NewSecureTokenVerifier(&SecureTokenConfig{Secret: stSecret})
	if err != nil {
		f.Fatal(err)
	}
	ecKey, err := ParsePrivateKeyPEM(readFile(f, "ec256.key"))
	if err != nil {
		f.Fatal(err)
	}
	hs := rawJWT(f, map[string]any{"alg": "HS256", "typ": "JWT"}, baseClaims(), jwt.SigningMethodHS256, hmacSecret)
	es := rawJWT(f, map[string]any{"alg": "ES256", "kid": "ec1"}, baseClaims(), jwt.SigningMethodES256, ecKey)
	sec := MintSecureToken(stSecret, "a001", clientIP.String(), testNow.Unix()-300, testNow.Unix()+3600, goldenSalt)
	// The credentials by their identity: a JWT's signing input, a securetoken's fields in lower case.
	want := map[string]Fingerprint{}
	for _, tok := range []string{hs, es} {
		want["jwt:"+tok[:strings.LastIndexByte(tok, '.')]] = FingerprintOf([]byte(tok))
	}
	want["st:"+sec] = FingerprintOf([]byte(sec))
	for _, tok := range []string{hs, es, sec, respellSig(f, hs), highS(f, es), strings.ToUpper(sec[:stHashLen]) + sec[stHashLen:], hs + "\n"} {
		f.Add([]byte(tok))
	}
	f.Fuzz(func(t *testing.T, tok []byte) {
		var out Verified
		var id string
		switch KindOf(tok) {
		case KindJWT:
			if v.Verify(tok, []byte("a001"), clientIP, testNow, &out) != nil {
				return
			}
			id = "jwt:" + string(tok[:bytes.LastIndexByte(tok, '.')])
		case KindSecureToken:
			if st.Verify(tok, []byte("a001"), clientIP, testNow, &out) != nil {
				return
			}
			id = "st:" + strings.ToLower(string(tok[:stHashLen])) + string(tok[stHashLen:])
		default:
			return
		}
		fp, ok := want[id]
		if !ok {
			t.Fatalf("verified %q, which is none of the credentials minted here", tok)
		}
		if out.Fingerprint != fp || FingerprintOf(tok) != fp {
			t.Fatalf("%q: fingerprint %v (verifier) / %v (text), want %v", tok, out.Fingerprint, FingerprintOf(tok), fp)
		}
	})
}
