package token

import (
	"net/http"
	"testing"
)

func TestKindRecognition(t *testing.T) {
	f := func(tok string, want Kind) {
		t.Helper()
		if got := KindOf([]byte(tok)); got != want {
			t.Errorf("KindOf(%q) = %v, want %v", tok, got, want)
		}
		if want != KindNone && ParseKind(want.String()) != want {
			t.Errorf("ParseKind(%q) is not %v", want.String(), want)
		}
	}
	f("e1.AAAA", KindEdge)
	f("a.b.c", KindJWT)
	f(goldenST, KindSecureToken)
	f("garbage", KindSecureToken)
}

func TestFingerprintRoundTrip(t *testing.T) {
	fp := FingerprintOf([]byte("a token"))
	if fp == 0 || fp&1 == 0 {
		t.Fatalf("fingerprint %x must be odd, never 0", uint64(fp))
	}
	if s := fp.String(); len(s) != 17 || s[0] != '~' || ParseFingerprint(s) != fp {
		t.Fatalf("%q does not read back as %x", s, uint64(fp))
	}
	for _, s := range []string{"", "~", "~0123456789abcdeg", "0123456789abcdef0", "user-42"} {
		if ParseFingerprint(s) != 0 {
			t.Errorf("%q read as a fingerprint", s)
		}
	}
}

func TestBearer(t *testing.T) {
	f := func(h, want string, wantOK bool) {
		t.Helper()
		got, ok := Bearer([]byte(h))
		if string(got) != want || ok != wantOK {
			t.Errorf("Bearer(%q) = %q %v, want %q %v", h, got, ok, want, wantOK)
		}
	}
	f("Bearer abc", "abc", true)
	f("bearer  abc \t", "abc", true)
	f("BEARER x.y.z", "x.y.z", true)
	f("Bearer   ", "", true)
	f("Bearer", "", false)
	f("Basic eDp5", "", false)
	f("", "", false)
}

func TestStatus(t *testing.T) {
	f := func(err error, want int) {
		t.Helper()
		if got := Status(err); got != want {
			t.Errorf("Status(%v) = %d, want %d", err, got, want)
		}
	}
	f(nil, http.StatusOK)
	f(ErrNoToken, http.StatusUnauthorized)
	f(ErrExpired, http.StatusGone)
	f(ErrSignature, http.StatusForbidden)
	f(ErrWrongIP, http.StatusForbidden)
}
