package token

import (
	"bytes"
	"net/netip"
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
	v, err := NewSecureTokenVerifier(&SecureTokenConfig{Secret: stSecret})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, tok []byte, channel string) {
		st, err := parseSecureToken(tok)
		if err == nil {
			// Strict parsing means one spelling: the fields put back together are the input, hex case aside.
			re := strings.ToLower(string(tok[:stHashLen])) + "-" + string(st.salt) + "-" + string(st.end) + "-" + string(st.start)
			if !strings.EqualFold(re, string(tok)) {
				t.Fatalf("parsed %q back as %q", tok, re)
			}
			if st.endN <= st.startN || len(st.start) != stTimeDigits || len(st.end) != stTimeDigits {
				t.Fatalf("window %q-%q accepted", st.start, st.end)
			}
		}
		var out Verified
		err = v.Verify(tok, []byte(channel), clientIP, testNow, &out)
		if err == nil {
			want := MintSecureToken(stSecret, channel, clientIP.String(), st.startN, st.endN, string(st.salt))
			if !strings.EqualFold(want, string(tok)) {
				t.Fatalf("verified a token the minter would not produce: %q", tok)
			}
		}
	})
}

func FuzzEdgeToken(f *testing.F) {
	s, _ := NewEdgeSigner([]byte(edgeSecret))
	for _, et := range []EdgeToken{
		{Channel: "a001", Expires: testNow.Add(time.Hour).Unix()},
		{Channel: "a001", Expires: testNow.Add(time.Hour).Unix(), IP: clientIP, SessionID: 7, UserID: "u"},
		{Channel: "a001", Expires: testNow.Add(time.Hour).Unix(), IP: netip.MustParseAddr("2001:db8::1")},
		{Channel: "a001", Expires: testNow.Add(time.Hour).Unix(), IP: clientIP, SessionID: 7, UserID: "u", Root: 0x1234567890abcdef},
	} {
		tok, _ := s.AppendToken(nil, &et)
		f.Add(tok, "a001")
	}
	f.Add([]byte("e1."), "a001")
	f.Add([]byte("e1.AQ"), "a001")
	f.Fuzz(func(t *testing.T, tok []byte, channel string) {
		var c EdgeClaims
		ip := clientIP
		err := s.Verify(tok, []byte(channel), ip, testNow.Unix(), &c)
		if err != nil {
			return
		}
		// Anything that verifies is exactly what the signer mints for those claims.
		et := EdgeToken{Channel: channel, Expires: c.Expires, SessionID: c.SessionID, UserID: string(c.UserID()), Root: c.Root}
		if c.IPBound {
			et.IP = ip
		}
		again, err := s.AppendToken(nil, &et)
		if err != nil || !bytes.Equal(again, tok) {
			t.Fatalf("verified %q but mints %q (%v)", tok, again, err)
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

func FuzzBearer(f *testing.F) {
	f.Add([]byte("Bearer abc"))
	f.Add([]byte("bearer\t"))
	f.Fuzz(func(t *testing.T, h []byte) {
		tok, ok := Bearer(h)
		if !ok && tok != nil {
			t.Fatalf("credentials %q from a header that is not Bearer", tok)
		}
		if len(tok) > 0 && (tok[0] == ' ' || tok[len(tok)-1] == ' ') {
			t.Fatalf("untrimmed %q", tok)
		}
	})
}
