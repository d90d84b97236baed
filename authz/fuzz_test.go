package authz

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz/token"
)

// Seeds beyond f.Add live in testdata/fuzz/FuzzXxx/ and are committed. The verifiers' own fuzz targets are in
// package token.

// fuzzJWTConfig is an HMAC auth.jwt with issuer, audience and no leeway: whatever the fuzzer sends, only a
// token signed with the key is allowed.
func fuzzJWTConfig() *JWTConfig {
	c := jwtConfig(string(hmacSecret))
	zero := time.Duration(0)
	c.Issuer, c.Audience, c.Leeway = "https://tv.example.com", "hlsedge", &zero
	return c
}

func FuzzJWT(f *testing.F) {
	a, err := New(Config{JWT: fuzzJWTConfig(), Edge: EdgeConfig{Secret: edgeSecret}}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(a.Close)
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJzdHJlYW1zIjpbImEwMDEiXX0.x", "a001")
	f.Add("eyJhbGciOiJub25lIn0.e30.", "a001")
	f.Add("..", "a001")
	f.Add("e30.e30.e30", "a001")
	f.Add(mintHS(f, []string{"a001"}, time.Hour), "a001")
	f.Fuzz(func(t *testing.T, tok, channel string) {
		if channel == "" {
			channel = "a001"
		}
		d := a.Authorize(req(channel, clientIP), q(tok), testNow)
		switch d.Status {
		case http.StatusOK, http.StatusUnauthorized, http.StatusForbidden, http.StatusGone:
		default:
			t.Fatalf("status %d", d.Status)
		}
		if d.Allowed() && token.KindOf([]byte(tok)) == token.KindJWT && !strings.HasPrefix(tok, "eyJ") {
			// Not impossible for a real JWT, but a fuzzer cannot forge an HMAC: report it.
			t.Fatalf("forged jwt allowed: %q", tok)
		}
		if len(tok) >= 8 && strings.Contains(d.Reason, tok) {
			t.Fatalf("reason leaks the token")
		}
	})
}
