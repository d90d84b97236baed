package token

import (
	"encoding/base64"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestEdgeTokenRoundTrip(t *testing.T) {
	secret := []byte(edgeSecret)
	exp := testNow.Add(time.Hour).Unix()
	f := func(in EdgeToken) {
		t.Helper()
		tok, err := MintEdgeToken(secret, in)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(tok, edgePrefix) || strings.ContainsAny(tok[len(edgePrefix):], "+/=%&?#.") {
			t.Fatalf("token %q is not URL-safe base64url", tok)
		}
		ip := in.IP
		if !ip.IsValid() {
			ip = otherIP // an unbound token works from anywhere
		}
		got, err := VerifyEdgeToken(secret, tok, in.Channel, ip, testNow)
		if err != nil {
			t.Fatalf("verify %+v: %v", in, err)
		}
		want := in
		want.IP = in.IP.Unmap()
		if got != want {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
	f(EdgeToken{Channel: "a001", Expires: exp})
	f(EdgeToken{Channel: "a001", Expires: exp, IP: clientIP, SessionID: 1<<63 + 5, UserID: "user-42"})
	f(EdgeToken{Channel: "sport/tennis", Expires: exp, IP: netip.MustParseAddr("2001:db8::7"), UserID: strings.Repeat("u", 255)})
	f(EdgeToken{Channel: strings.Repeat("c", 255), Expires: exp})
	f(EdgeToken{Channel: "a001", Expires: exp, IP: clientIP, SessionID: 3, UserID: "user-42", Root: 0xfedcba9876543211})
	f(EdgeToken{Channel: strings.Repeat("c", 255), Expires: exp, IP: netip.MustParseAddr("2001:db8::7"), UserID: strings.Repeat("u", 255), Root: 1})
}

// A child names the viewer's own token, its root, and the operator may name a viewer by any child they copied:
// Authentic checks the key alone, whatever the channel, address and expiry.
func TestEdgeTokenRootAndAuthentic(t *testing.T) {
	s, _ := NewEdgeSigner([]byte(edgeSecret))
	tok, _ := s.AppendToken(nil, &EdgeToken{Channel: "a001", Expires: testNow.Unix() + 10, IP: clientIP, UserID: "user-42", Root: 0x77})
	var c EdgeClaims
	if !s.Authentic(tok, &c) || c.Root != 0x77 || string(c.UserID()) != "user-42" {
		t.Fatalf("authentic: %+v", c)
	}
	if v := c.Verified(); v.Fingerprint != 0x77 || v.UserID != "user-42" {
		t.Fatalf("verified %+v: the fingerprint is the root's", v)
	}
	other, _ := NewEdgeSigner([]byte("another-edge-secret-0123456789abcdef"))
	if other.Authentic(tok, &c) {
		t.Fatal("a token of another key is not authentic")
	}
	// A child minted before children carried a root names it in place of a user.
	old, _ := s.AppendToken(nil, &EdgeToken{Channel: "a001", Expires: testNow.Unix() + 10, UserID: Fingerprint(0x99).String()})
	if !s.Authentic(old, &c) {
		t.Fatal("old child")
	}
	if v := c.Verified(); v.Fingerprint != 0x99 || v.UserID != "" {
		t.Fatalf("old child verified %+v", v)
	}
}

func TestEdgeTokenRefusals(t *testing.T) {
	secret := []byte(edgeSecret)
	exp := testNow.Add(time.Hour).Unix()
	tok, err := MintEdgeToken(secret, EdgeToken{Channel: "a001", Expires: exp, IP: clientIP, SessionID: 9, UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(tok[len(edgePrefix):])
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return edgePrefix + base64.RawURLEncoding.EncodeToString(b)
	}
	f := func(name, tok, channel string, ip netip.Addr, now time.Time, want error) {
		t.Helper()
		_, err := VerifyEdgeToken(secret, tok, channel, ip, now)
		if !errors.Is(err, want) {
			t.Errorf("%s: got %v, want %v", name, err, want)
		}
	}
	f("valid", tok, "a001", clientIP, testNow, nil)
	f("ipv4-mapped client", tok, "a001", netip.MustParseAddr("::ffff:203.0.113.7"), testNow, nil)
	f("other channel", tok, "b002", clientIP, testNow, ErrWrongChannel)
	f("other ip", tok, "a001", otherIP, testNow, ErrWrongIP)
	f("ipv6 client for ipv4 token", tok, "a001", netip.MustParseAddr("2001:db8::7"), testNow, ErrWrongIP)
	f("expired", tok, "a001", clientIP, time.Unix(exp, 0), ErrExpired)
	f("expiry tampered", flip(5), "a001", clientIP, testNow, ErrSignature)
	f("session tampered", flip(10), "a001", clientIP, testNow, ErrSignature)
	f("ip tampered", flip(16), "a001", clientIP.Next(), testNow, ErrSignature)
	f("mac tampered", flip(len(raw)-1), "a001", clientIP, testNow, ErrSignature)
	f("version", flip(0), "a001", clientIP, testNow, ErrMalformed)
	f("flags", flip(1), "a001", clientIP, testNow, ErrMalformed)
	f("truncated", tok[:len(tok)-4], "a001", clientIP, testNow, ErrMalformed)
	f("extended", tok+"AAAA", "a001", clientIP, testNow, ErrMalformed)
	f("trailing bits", tok[:len(tok)-1]+string(rune(tok[len(tok)-1]^1)), "a001", clientIP, testNow, ErrMalformed)
	f("padding", tok+"==", "a001", clientIP, testNow, ErrMalformed)
	f("prefix only", edgePrefix, "a001", clientIP, testNow, ErrMalformed)
	f("std alphabet", edgePrefix+"++//", "a001", clientIP, testNow, ErrMalformed)
	f("huge", edgePrefix+strings.Repeat("A", edgeMaxToken), "a001", clientIP, testNow, ErrMalformed)
	other, _ := MintEdgeToken([]byte("another-edge-secret-0123456789abcdef"), EdgeToken{Channel: "a001", Expires: exp})
	f("other key", other, "a001", clientIP, testNow, ErrSignature)

	if _, err := MintEdgeToken(secret, EdgeToken{Channel: strings.Repeat("c", 256), Expires: exp}); err == nil {
		t.Error("channel of 256 bytes must be refused")
	}
	if _, err := MintEdgeToken(secret, EdgeToken{Channel: "a", Expires: exp, UserID: strings.Repeat("u", 256)}); err == nil {
		t.Error("user of 256 bytes must be refused")
	}
	if _, err := MintEdgeToken([]byte("short"), EdgeToken{Channel: "a", Expires: exp}); err == nil {
		t.Error("short secret must be refused")
	}
}

func TestEdgeTokenVerifyAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	s, _ := NewEdgeSigner([]byte(edgeSecret))
	tok, _ := s.AppendToken(nil, &EdgeToken{Channel: "a001", Expires: testNow.Add(time.Hour).Unix(), IP: clientIP, UserID: "user-42"})
	ch := []byte("a001")
	var c EdgeClaims
	allocs := testing.AllocsPerRun(100, func() {
		if err := s.Verify(tok, ch, clientIP, testNow.Unix(), &c); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("edge verify allocates %v times", allocs)
	}
}

// An edge child carries its parent's user, or for a parent without one the parent's fingerprint, which
// Verified gives back as the fingerprint rather than as a user.
func TestEdgeClaimsVerified(t *testing.T) {
	s, _ := NewEdgeSigner([]byte(edgeSecret))
	exp := testNow.Add(time.Hour).Unix()
	parent := FingerprintOf([]byte("parent-token"))
	f := func(user string, want Verified) {
		t.Helper()
		tok, err := s.AppendToken(nil, &EdgeToken{Channel: "a001", Expires: exp, IP: clientIP, SessionID: 7, UserID: user})
		if err != nil {
			t.Fatal(err)
		}
		var c EdgeClaims
		if err := s.Verify(tok, []byte("a001"), clientIP, testNow.Unix(), &c); err != nil {
			t.Fatal(err)
		}
		if got := c.Verified(); got != want {
			t.Fatalf("user %q: %+v, want %+v", user, got, want)
		}
	}
	base := Verified{Kind: KindEdge, Expires: exp, Until: exp * int64(time.Second), IPBound: true, SessionID: 7,
		Key: RefOf([]byte(edgeSecret))}
	withUser, withFP := base, base
	withUser.UserID = "user-42"
	withFP.Fingerprint = parent
	f("user-42", withUser)
	f(parent.String(), withFP)
	f("", base)
}
