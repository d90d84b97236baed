package authz

import (
	"bytes"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Seeds beyond f.Add live in testdata/fuzz/FuzzXxx/ and are committed.

func FuzzSecureToken(f *testing.F) {
	f.Add([]byte(goldenST), "bbc")
	f.Add([]byte(goldenSTNoIP), "bbc")
	f.Add([]byte("0000000000000000000000000000000000000000-a-2-1"), "x")
	f.Add([]byte("--"), "")
	v := &secureTokenVerifier{secret: []byte(stSecret)}
	f.Fuzz(func(t *testing.T, tok []byte, channel string) {
		st, err := parseSecureToken(tok)
		if err == nil {
			// Strict parsing means one spelling: the fields put back together are the input, hex case aside.
			re := strings.ToLower(string(tok[:stHashLen])) + "-" + string(st.salt) + "-" + string(st.end) + "-" + string(st.start)
			if !strings.EqualFold(re, string(tok)) {
				t.Fatalf("parsed %q back as %q", tok, re)
			}
			if st.endN < st.startN {
				t.Fatal("end before start accepted")
			}
		}
		var out verified
		err = v.verify(tok, []byte(channel), clientIP, testNow, &out)
		if err == nil {
			want := MintSecureToken(stSecret, channel, clientIP.String(), st.startN, st.endN, string(st.salt))
			if !strings.EqualFold(want, string(tok)) {
				t.Fatalf("verified a token the minter would not produce: %q", tok)
			}
		}
	})
}

func FuzzEdgeToken(f *testing.F) {
	s, _ := newEdgeSigner([]byte(edgeSecret))
	for _, et := range []EdgeToken{
		{Channel: "a001", Expires: testNow.Add(time.Hour).Unix()},
		{Channel: "a001", Expires: testNow.Add(time.Hour).Unix(), IP: clientIP, SessionID: 7, UserID: "u"},
		{Channel: "a001", Expires: testNow.Add(time.Hour).Unix(), IP: netip.MustParseAddr("2001:db8::1")},
	} {
		tok, _ := s.appendToken(nil, &et)
		f.Add(tok, "a001")
	}
	f.Add([]byte("e1."), "a001")
	f.Add([]byte("e1.AQ"), "a001")
	f.Fuzz(func(t *testing.T, tok []byte, channel string) {
		var c edgeClaims
		ip := clientIP
		err := s.verify(tok, []byte(channel), ip, testNow.Unix(), &c)
		if err != nil {
			return
		}
		// Anything that verifies is exactly what the signer mints for those claims.
		et := EdgeToken{Channel: channel, Expires: c.expires, SessionID: c.sessionID, UserID: string(c.userID())}
		if c.ipBound {
			et.IP = ip
		}
		again, err := s.appendToken(nil, &et)
		if err != nil || !bytes.Equal(again, tok) {
			t.Fatalf("verified %q but mints %q (%v)", tok, again, err)
		}
	})
}

func FuzzJWT(f *testing.F) {
	a, err := New(jwtConfig(), nil)
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
		if d.Allowed() && kindOf([]byte(tok)) == KindJWT && !strings.HasPrefix(tok, "eyJ") {
			// Not impossible for a real JWT, but a fuzzer cannot forge an HMAC: report it.
			t.Fatalf("forged jwt allowed: %q", tok)
		}
		if len(tok) >= 8 && strings.Contains(d.Reason, tok) {
			t.Fatalf("reason leaks the token")
		}
	})
}

func FuzzJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","alg":"RS256"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		keys, _, err := parseJWKS(doc)
		if err != nil {
			return
		}
		for _, k := range keys {
			if k.fam == famNone || k.fam == famHMAC || k.key == nil {
				t.Fatalf("unusable key accepted: %+v", k)
			}
			if k.alg != "" && algFamilyOf(k.alg) != k.fam {
				t.Fatalf("alg %q bound to family %d", k.alg, k.fam)
			}
		}
	})
}

func FuzzGlob(f *testing.F) {
	f.Add("sport/*", "sport/f1")
	f.Add("*a*b?", "xxaybz")
	f.Add("?", "")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if len(pattern) > 64 || len(name) > 64 {
			return
		}
		var re strings.Builder
		re.WriteString(`(?s)\A`)
		for _, c := range []byte(pattern) {
			switch c {
			case '*':
				re.WriteString(`.*`)
			case '?':
				re.WriteString(`.`)
			default:
				re.WriteString(regexp.QuoteMeta(string([]byte{c})))
			}
		}
		re.WriteString(`\z`)
		// Compare on bytes: regexp works on UTF-8, so map every byte to one rune first.
		oracle := regexp.MustCompile(latin1(re.String()))
		if got, want := globMatch(pattern, []byte(name)), oracle.MatchString(latin1(name)); got != want {
			t.Fatalf("globMatch(%q, %q) = %v, oracle %v", pattern, name, got, want)
		}
	})
}

// latin1 maps each byte to the rune of the same value, so byte-wise and rune-wise matching agree.
func latin1(s string) string {
	r := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		r[i] = rune(s[i])
	}
	return string(r)
}

func FuzzBearer(f *testing.F) {
	f.Add([]byte("Bearer abc"))
	f.Add([]byte("bearer\t"))
	f.Fuzz(func(t *testing.T, h []byte) {
		tok := bearer(h)
		if len(tok) > 0 && (tok[0] == ' ' || tok[len(tok)-1] == ' ') {
			t.Fatalf("untrimmed %q", tok)
		}
	})
}
