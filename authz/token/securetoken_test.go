package token

import (
	"crypto/sha1" //nolint:gosec // the protocol under test
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func newST(t *testing.T, cfg SecureTokenConfig) *SecureTokenVerifier {
	t.Helper()
	if err := cfg.Validate("auth.securetoken"); err != nil {
		t.Fatal(err)
	}
	v, err := NewSecureTokenVerifier(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// verifyST verifies tok for channel from ip at now, as the authorizer would.
func verifyST(v *SecureTokenVerifier, tok, channel string, ip netip.Addr, now time.Time) (Verified, int, string) {
	var out Verified
	err := v.Verify([]byte(tok), []byte(channel), ip, now, &out)
	st, reason := verdict(err)
	return out, st, reason
}

// phpSecureToken follows the seed's PHP example line by line (seed 004): the website's side of the protocol.
func phpSecureToken(stream, remoteAddr, key string, now int64, salt string) string {
	lifetime := int64(3600 * 3)
	desync := int64(300)
	starttime := now - desync
	endtime := starttime + lifetime
	hashsrt := stream + remoteAddr + fmt.Sprint(starttime) + fmt.Sprint(endtime) + key + salt
	sum := sha1.Sum([]byte(hashsrt)) //nolint:gosec // protocol
	hash := hex.EncodeToString(sum[:])
	return hash + "-" + salt + "-" + fmt.Sprint(endtime) + "-" + fmt.Sprint(starttime)
}

// Golden tokens computed outside Go (python3 hashlib) with stream bbc, key SECRETKEY, now 1700000000 and salt
// 00112233445566778899aabbccddeeff, exactly as the seed's PHP does.
const (
	goldenST     = "f1d8db96d8390e4f96e5c9ab905161c60beaf116-00112233445566778899aabbccddeeff-1700010500-1699999700" // ip 203.0.113.7
	goldenSTNoIP = "4c382f31cdad90e49e183a3dc93892c96879b155-00112233445566778899aabbccddeeff-1700010500-1699999700"
	goldenSTIPv6 = "82c383bdc6389573622db87b6b6ce5a1a86cf535-00112233445566778899aabbccddeeff-1700010500-1699999700" // ip 2001:db8::7
	goldenSalt   = "00112233445566778899aabbccddeeff"
)

func TestSecureTokenSeedPHPExample(t *testing.T) {
	v := newST(t, SecureTokenConfig{Secret: stSecret})
	// The website mints at testNow; the viewer plays a minute later.
	tok := phpSecureToken("bbc", clientIP.String(), stSecret, testNow.Unix(), NewSalt())
	out, st, reason := verifyST(v, tok, "bbc", clientIP, testNow.Add(time.Minute))
	if st != http.StatusOK || out.Kind != KindSecureToken || out.Expires != testNow.Unix()-300+3*3600 || out.Fingerprint != FingerprintOf([]byte(tok)) {
		t.Fatalf("seed PHP token refused: %d %q", st, reason)
	}
	if got := phpSecureToken("bbc", "203.0.113.7", stSecret, testNow.Unix(), goldenSalt); got != goldenST {
		t.Fatalf("php reproduction drifted from the golden vector: %s", got)
	}
	if got := MintSecureToken(stSecret, "bbc", "203.0.113.7", testNow.Unix()-300, testNow.Unix()-300+3*3600, goldenSalt); got != goldenST {
		t.Fatalf("MintSecureToken = %s, want %s", got, goldenST)
	}
}

func TestSecureTokenVerifier(t *testing.T) {
	a := newST(t, SecureTokenConfig{Secret: stSecret})
	aNoIP := newST(t, SecureTokenConfig{Secret: stSecret, NoCheckIP: true})
	ip6 := netip.MustParseAddr("2001:db8::7")
	at := testNow.Add(time.Minute)
	start, end := testNow.Unix()-300, testNow.Unix()-300+3*3600
	f := func(name string, v *SecureTokenVerifier, tok, channel string, ip netip.Addr, now time.Time, status int, reason string) {
		t.Helper()
		if _, st, got := verifyST(v, tok, channel, ip, now); st != status || !strings.Contains(got, reason) {
			t.Errorf("%s: got %d %q, want %d %q", name, st, got, status, reason)
		}
	}
	ok, forbidden, gone := http.StatusOK, http.StatusForbidden, http.StatusGone
	f("golden", a, goldenST, "bbc", clientIP, at, ok, "ok")
	f("golden ipv4-mapped client", a, goldenST, "bbc", netip.MustParseAddr("::ffff:203.0.113.7"), at, ok, "ok")
	f("golden ipv6", a, goldenSTIPv6, "bbc", ip6, at, ok, "ok")
	f("golden no_check_ip", aNoIP, goldenSTNoIP, "bbc", otherIP, at, ok, "ok")
	f("ip token under no_check_ip", aNoIP, goldenST, "bbc", clientIP, at, forbidden, "bad signature")
	f("uppercase hex", a, strings.ToUpper(goldenST[:40])+goldenST[40:], "bbc", clientIP, at, ok, "ok")

	f("wrong ip", a, goldenST, "bbc", otherIP, at, forbidden, "bad signature")
	f("no client ip never matches an ip-less token", a, goldenSTNoIP, "bbc", netip.Addr{}, at, forbidden, "another client ip")
	f("wrong stream", a, goldenST, "cnn", clientIP, at, forbidden, "bad signature")
	f("wrong salt", a, strings.Replace(goldenST, goldenSalt, "00112233445566778899aabbccddeefe", 1), "bbc", clientIP, at, forbidden, "bad signature")
	f("wrong key", a, MintSecureToken("OTHERKEY", "bbc", clientIP.String(), start, end, goldenSalt), "bbc", clientIP, at, forbidden, "bad signature")
	f("end moved", a, strings.Replace(goldenST, "-1700010500-", "-1800010500-", 1), "bbc", clientIP, at, forbidden, "bad signature")
	f("expired", a, goldenST, "bbc", clientIP, time.Unix(end, 0), gone, "token expired")
	f("expired forged", a, MintSecureToken("OTHERKEY", "bbc", clientIP.String(), start-9999, start-1, goldenSalt), "bbc", clientIP, at, forbidden, "bad signature")
	future := MintSecureToken(stSecret, "bbc", clientIP.String(), testNow.Unix()+600, testNow.Unix()+3600, goldenSalt)
	f("start in the future", a, future, "bbc", clientIP, at, forbidden, "not valid yet")

	// Strict parsing.
	for _, bad := range []string{
		"",
		goldenST + "-1",
		goldenST[:39] + "-" + goldenST[40:],
		"g" + goldenST[1:],
		strings.Replace(goldenST, goldenSalt, "", 1),
		strings.Replace(goldenST, goldenSalt, "salt_x", 1),
		strings.Replace(goldenST, goldenSalt, strings.Repeat("a", 65), 1),
		strings.Replace(goldenST, "-1699999700", "-01699999700", 1),
		strings.Replace(goldenST, "-1699999700", "-+1699999700", 1),
		strings.Replace(goldenST, "-1699999700", "-", 1),
		strings.Replace(goldenST, "-1700010500-", "-1600000000-", 1), // end before start
		strings.Replace(goldenST, "-1700010500-", "-99999999999999-", 1),
		strings.Replace(goldenST, "-1700010500-", "-1699999700-", 1),  // start == end
		strings.Replace(goldenST, "-1699999700", "-999999999", 1),     // before 2001-09-09
		strings.Replace(goldenST, "-1700010500-", "-10000000000-", 1), // after 2286
		goldenST + " ",
	} {
		if bad == "" {
			continue
		}
		f("malformed "+bad, a, bad, "bbc", clientIP, at, forbidden, "malformed")
	}
}

func TestSecureTokenDesync(t *testing.T) {
	v := newST(t, SecureTokenConfig{Secret: stSecret, Desync: time.Minute})
	tok := MintSecureToken(stSecret, "bbc", clientIP.String(), testNow.Unix()+30, testNow.Unix()+90, goldenSalt)
	f := func(now time.Time, want int) {
		t.Helper()
		if _, st, reason := verifyST(v, tok, "bbc", clientIP, now); st != want {
			t.Errorf("at %v: got %d %q, want %d", now.Sub(testNow), st, reason, want)
		}
	}
	f(testNow.Add(-31*time.Second), http.StatusForbidden) // start-desync not reached
	f(testNow.Add(2*time.Second), http.StatusOK)          // start 28 s ahead, within the minute of desync
	f(testNow.Add(149*time.Second), http.StatusOK)        // end+desync not reached
	f(testNow.Add(150*time.Second), http.StatusGone)      // end+desync
}

// Flussonic's hash runs stream, ip, start and end together without separators. The formula stays, byte for
// byte; the fields are held to one spelling and a plausible window instead, so that moving a digit across a
// boundary, which keeps the hash, no longer makes another valid token.
func TestSecureTokenFieldBoundaries(t *testing.T) {
	v := newST(t, SecureTokenConfig{Secret: stSecret})
	noIP := newST(t, SecureTokenConfig{Secret: stSecret, NoCheckIP: true})
	at := testNow.Add(time.Minute)
	start, end := testNow.Unix()-299, testNow.Unix()-299+3600 // start ends in a non-zero digit
	f := func(name string, v *SecureTokenVerifier, tok, channel, ip string, status int, reason string) {
		t.Helper()
		if _, st, got := verifyST(v, tok, channel, netip.MustParseAddr(ip), at); st != status || !strings.Contains(got, reason) {
			t.Errorf("%s: got %d %q, want %d %q", name, st, got, status, reason)
		}
	}
	// A link bound to 203.0.113.1 hashes "...203.0.113.1" + "1699999701": the same bytes as address
	// 203.0.113.11 followed by start 699999701 (1992).
	bound := MintSecureToken(stSecret, "bbc", "203.0.113.1", start, end, goldenSalt)
	free := MintSecureToken(stSecret, "a001", "", start, end, goldenSalt)
	// sameHash checks that a respelling keeps the original's hash: the website never minted it, yet before
	// these checks it verified.
	sameHash := func(respelled string) string {
		t.Helper()
		if respelled[:stHashLen] != bound[:stHashLen] && respelled[:stHashLen] != free[:stHashLen] {
			t.Fatalf("%q does not keep the hash", respelled)
		}
		return respelled
	}
	f("its own address", v, bound, "bbc", "203.0.113.1", http.StatusOK, "ok")
	shifted := sameHash(MintSecureToken(stSecret, "bbc", "203.0.113.11", start-1_000_000_000, end, goldenSalt))
	f("a digit of start moved into the address", v, shifted, "bbc", "203.0.113.11", http.StatusForbidden, "malformed")

	// start+end "1699999701"+"1700003301": the last digit of start moved in front of end hashes alike and
	// turns a one-hour window into one ending in the year 2340.
	centuries := sameHash(MintSecureToken(stSecret, "bbc", "203.0.113.1", start/10, (start%10)*10_000_000_000+end, goldenSalt))
	f("a digit of start moved into end", v, centuries, "bbc", "203.0.113.1", http.StatusForbidden, "malformed")

	// Without the address, the stream name meets start: "a001"+"1699999701" is "a0011"+"699999701".
	f("no_check_ip: its own stream", noIP, free, "a001", "198.51.100.9", http.StatusOK, "ok")
	intoStream := sameHash(MintSecureToken(stSecret, "a0011", "", start-1_000_000_000, end, goldenSalt))
	f("no_check_ip: a digit of start moved into the stream", noIP, intoStream, "a0011", "198.51.100.9", http.StatusForbidden, "malformed")

	// An authentic window longer than max_lifetime (default 24h) is refused whatever its hash says.
	long := MintSecureToken(stSecret, "bbc", clientIP.String(), start, start+25*3600, goldenSalt)
	f("window over the default max_lifetime", v, long, "bbc", clientIP.String(), http.StatusForbidden, "longer than max_lifetime")
	day := MintSecureToken(stSecret, "bbc", clientIP.String(), start, start+24*3600, goldenSalt)
	f("window of exactly max_lifetime", v, day, "bbc", clientIP.String(), http.StatusOK, "ok")
	week := newST(t, SecureTokenConfig{Secret: stSecret, MaxLifetime: 7 * 24 * time.Hour})
	f("window under a configured max_lifetime", week, long, "bbc", clientIP.String(), http.StatusOK, "ok")
	forged := MintSecureToken("OTHERKEY", "bbc", clientIP.String(), start, start+25*3600, goldenSalt)
	f("a forged long window learns nothing of the limit", v, forged, "bbc", clientIP.String(), http.StatusForbidden, "bad signature")
}

func TestSecureTokenMaxLifetimeConfig(t *testing.T) {
	f := func(d time.Duration, ok bool) {
		t.Helper()
		err := (&SecureTokenConfig{Secret: "k", MaxLifetime: d}).Validate("auth.securetoken")
		if (err == nil) != ok || err != nil && !strings.Contains(err.Error(), "'auth.securetoken.max_lifetime'") {
			t.Errorf("max_lifetime %v: %v", d, err)
		}
	}
	f(0, true)
	f(time.Hour, true)
	f(-time.Hour, false)
	f(time.Second, false)
	f(400*24*time.Hour, false)
}
