package proxy

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/bench/synthorigin"
)

const testTierKey = "tier-key-0123456789abcdef0123456789abcdef"

// tierValue is the header an edge would send with key at now.
func tierValue(key, method, uri string, now time.Time) string {
	var h fasthttp.RequestHeader
	signTier(&h, []byte(key), []byte(method), []byte(uri), now)
	return string(h.Peek(tierHeader))
}

func TestTierSignature(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	key := []byte(testTierKey)
	uri := "/play/a001/index.m3u8?_HLS_msn=7&_HLS_part=2"
	good := tierValue(testTierKey, "GET", uri, now)
	f := func(method, uri, value string, at time.Time, want error) {
		t.Helper()
		if err := verifyTier(key, []byte(method), []byte(uri), []byte(value), at); !errors.Is(err, want) {
			t.Fatalf("verify(%s %s, %q) = %v, want %v", method, uri, value, err, want)
		}
	}
	f("GET", uri, good, now, nil)
	f("GET", uri, good, now.Add(tierValidity), nil)
	f("GET", uri, good, now.Add(-tierValidity), nil)
	f("GET", uri, good, now.Add(tierValidity+time.Second), errTierTime)
	f("GET", uri, good, now.Add(-tierValidity-time.Second), errTierTime)
	f("HEAD", uri, good, now, errTierMAC)
	f("GET", "/play/a001/index.m3u8?_HLS_msn=8&_HLS_part=2", good, now, errTierMAC)
	f("GET", "/play/a002/index.m3u8?_HLS_msn=7&_HLS_part=2", good, now, errTierMAC)
	f("GET", uri, tierValue("another-key-0123456789abcdef0123456789", "GET", uri, now), now, errTierMAC)
	// Another time under the same MAC.
	f("GET", uri, strconv.FormatInt(now.Unix()+1, 10)+good[strings.IndexByte(good, '.'):], now, errTierMAC)
	mac := good[strings.IndexByte(good, '.')+1:]
	for _, bad := range []string{"", ".", "1700000000", "1700000000.", "." + mac, "x." + mac, "-1." + mac,
		"99999999999999999999." + mac, "1700000000." + mac + "A", "1700000000." + mac[:10],
		"1700000000." + base64.StdEncoding.EncodeToString(make([]byte, 32))} {
		f("GET", uri, bad, now, errTierMalformed)
	}
}

func TestTierConfigValidate(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "tier.key")
	if err := os.WriteFile(keyFile, []byte("  "+testTierKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HLSEDGE_TEST_TIER_KEY", testTierKey)
	f := func(tc TierConfig, shieldOrigin bool, want string) {
		t.Helper()
		origins := []OriginConfig{{URL: "http://a"}, {URL: "http://b", Shield: shieldOrigin}}
		err := tc.validate(origins)
		switch {
		case want == "" && err != nil:
			t.Fatalf("%+v: %v", tc, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Fatalf("%+v: error %v, want one naming %q", tc, err, want)
		case want == "" && (tc.Key != "" || tc.KeyFile != "" || tc.KeyEnv != "") && string(tc.key) != testTierKey:
			t.Fatalf("%+v: key %q", tc, tc.key)
		}
	}
	f(TierConfig{}, false, "")
	f(TierConfig{Role: "edge"}, false, "")
	f(TierConfig{Role: "origin"}, false, "'tier.role'")
	f(TierConfig{Role: "shield"}, false, "'tier.key'")
	f(TierConfig{}, true, "'origins[1]'")
	f(TierConfig{Role: "shield", Key: "short"}, false, "'tier.key' must give a key of at least 32 bytes")
	f(TierConfig{Role: "shield", Key: testTierKey, KeyEnv: "X"}, false, "must not be set together")
	f(TierConfig{Role: "shield", KeyFile: filepath.Join(dir, "missing")}, false, "'tier.key_file' must be readable")
	f(TierConfig{Role: "shield", KeyEnv: "HLSEDGE_TEST_TIER_UNSET"}, false, "'tier.key_env'")
	f(TierConfig{Role: "shield", Key: testTierKey}, false, "")
	f(TierConfig{Role: "shield", KeyFile: keyFile}, true, "")
	f(TierConfig{KeyEnv: "HLSEDGE_TEST_TIER_KEY"}, true, "")
}

// Two edges behind one shield in front of the headend: the shield coalesces across the edges, so the fleet costs
// the headend one request per playlist version, per part and per segment; no viewer token goes past the edges,
// and the shield takes the edges' signature, not a forged or stale one, in place of a token.
func TestTierTwoEdgesBehindOneShield(t *testing.T) {
	clk := newLLClock()
	headURL, head := startLLOrigin(t, clk, synthorigin.Config{URIs: synthorigin.URIsAbsolute, WindowSize: 4})
	shieldURL, shield := startEdgeOn(t, clk, func(c *Config) {
		withAuth(c)
		c.Tier = TierConfig{Role: "shield", Key: testTierKey}
	}, headURL)
	edge := func() (string, *Server) {
		return startEdgeOn(t, clk, func(c *Config) {
			withAuth(c)
			c.Origins[0].Shield = true
			c.Tier = TierConfig{Key: testTierKey}
		}, shieldURL)
	}
	aURL, a := edge()
	bURL, b := edge()
	tok, err := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(testJWTSecret), Streams: []string{"a001"},
		TTL: time.Hour, Now: clk.Now()})
	if err != nil {
		t.Fatal(err)
	}
	const pl = "/play/a001/index.m3u8"

	// Plain playlists: the shield's cache serves the second edge.
	for _, base := range []string{aURL, bURL} {
		if code, _, body := get(t, base+pl+"?token="+tok); code != 200 || hint(string(body)) == "" {
			t.Fatalf("playlist through %s: %d\n%s", base, code, body)
		}
	}
	if n := head.Stats().Kinds["playlist"]; n != 1 {
		t.Fatalf("two edges cost the headend %d playlist requests, want 1", n)
	}

	// A blocking reload for the next part, from viewers on both edges.
	const perEdge = 20
	key := fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=2", pl, llSeq)
	var reloads []<-chan llResult
	for i := range 2 * perEdge {
		base := []string{aURL, bURL}[i%2]
		reloads = append(reloads, asyncGet(base+key+"&token="+tok))
	}
	waitHeld(t, head, 1)
	eventually(t, "viewers queued on each edge, and the second edge on the shield", func() bool {
		return a.fetches.Waiters(key) == perEdge-1 && b.fetches.Waiters(key) == perEdge-1 && shield.fetches.Waiters(key) == 1
	})
	clk.AdvanceTo(head.PartAvailable(llSeq, 2))
	var media string
	for i, ch := range reloads {
		r := <-ch
		if r.err != nil || r.code != 200 || !strings.Contains(lastPart(r.body), head.PartName("a001", 0, llSeq, 2)) {
			t.Fatalf("reload %d: %v %d, last part %q", i, r.err, r.code, lastPart(r.body))
		}
		media = r.body
	}
	if st := head.Stats(); st.BlockingRequests != 1 || st.Blocking[key] != 1 {
		t.Fatalf("the fleet cost the headend %d blocking requests (%v), want 1", st.BlockingRequests, st.Blocking)
	}

	// The hinted part, from viewers on both edges: one headend request, streamed through both tiers.
	part := hint(media)
	if !strings.Contains(part, head.PartName("a001", 0, llSeq, 3)) || !strings.Contains(part, "token=") {
		t.Fatalf("hint %q: want part 3 with the viewer's child token", part)
	}
	partKey := part[:strings.IndexByte(part, '?')]
	var parts []<-chan llResult
	for i := range 2 * perEdge {
		parts = append(parts, asyncGet([]string{aURL, bURL}[i%2]+part))
	}
	waitHeld(t, head, 1)
	eventually(t, "part requests queued on each edge, and the second edge on the shield", func() bool {
		return a.fetches.Waiters(partKey) == perEdge-1 && b.fetches.Waiters(partKey) == perEdge-1 &&
			shield.fetches.Waiters(partKey) == 1
	})
	clk.AdvanceTo(head.PartAvailable(llSeq, 3))
	first := ""
	for i, ch := range parts {
		r := <-ch
		if r.err != nil || r.code != 200 || first != "" && r.body != first {
			t.Fatalf("part %d: %v %d, %d bytes (first viewer %d)", i, r.err, r.code, len(r.body), len(first))
		}
		first = r.body
	}
	if n := head.Stats().Kinds["part"]; n != 1 {
		t.Fatalf("the fleet cost the headend %d part requests, want 1", n)
	}
	for _, s := range []*Server{shield, a, b} {
		wantMetrics(t, s, `hlsedge_ll_parts_streamed_total 1`)
	}

	// Every segment and the init segment, through one edge and then the other: one headend fetch each.
	uris := regexp.MustCompile(`(?m)^(/play/a001/[^\s]+\.m4s\?token=\S+)$`).FindAllString(media, -1)
	uris = append(uris, regexp.MustCompile(`#EXT-X-MAP:URI="([^"]+)"`).FindStringSubmatch(media)[1])
	if len(uris) != 5 {
		t.Fatalf("want 4 segments and the init segment, got %q", uris)
	}
	for _, u := range uris {
		for _, base := range []string{aURL, bURL} {
			if code, _, body := get(t, base+u); code != 200 || len(body) == 0 {
				t.Fatalf("%s through %s: %d", u, base, code)
			}
		}
		if n := head.Stats().URIs[u[:strings.IndexByte(u, '?')]]; n != 1 {
			t.Fatalf("%s: %d headend fetches for two edges, want 1", u, n)
		}
	}
	for uri := range head.Stats().URIs {
		if strings.Contains(uri, "token") {
			t.Fatalf("headend saw %q: viewer tokens stay at the edge", uri)
		}
	}

	// The shield: a viewer without a token is refused as anywhere, and only a valid, fresh signature stands in for one.
	f := func(base, value string, want int, reason string) {
		t.Helper()
		var hdr []string
		if value != "" {
			hdr = []string{tierHeader, value}
		}
		code, _, body := get(t, base+pl, hdr...)
		if code != want || !strings.Contains(string(body), reason) {
			t.Fatalf("%s with %q: %d %q, want %d %q", base, value, code, body, want, reason)
		}
	}
	f(shieldURL, "", 401, "")
	f(shieldURL, tierValue("forged-key-0123456789abcdef0123456789", "GET", pl, clk.Now()), 403, "does not match")
	f(shieldURL, tierValue(testTierKey, "GET", pl, clk.Now().Add(-time.Minute)), 403, "outside its validity")
	f(shieldURL, tierValue(testTierKey, "GET", pl, clk.Now()), 200, "#EXTM3U")
	wantMetrics(t, shield, `hlsedge_tier_requests_total{result="refused"} 2`)
	// An edge is not a shield: a signature does not replace its viewers' tokens.
	f(aURL, tierValue(testTierKey, "GET", pl, clk.Now()), 401, "")
}
