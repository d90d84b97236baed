package proxy

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/bench/synthorigin"
)

// llAuthEdge is an LL origin of two variants (absolute URIs) behind an edge with JWT auth, all on one manual
// clock, and a viewer's token for a001.
func llAuthEdge(t *testing.T) (clk *llClock, o *synthorigin.Origin, base, tok string) {
	t.Helper()
	clk = newLLClock()
	originURL, o := startLLOrigin(t, clk, synthorigin.Config{URIs: synthorigin.URIsAbsolute, Variants: 2})
	base, _ = startEdgeOn(t, clk, withAuth, originURL)
	tok, err := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(testJWTSecret), Streams: []string{"a001"},
		TTL: time.Hour, Now: clk.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return clk, o, base, tok
}

// Every URI of an LL playlist carries the viewer's child token through the edge: parts, the preload hint,
// rendition reports and the init segment as well as segments; and each of them plays with it.
func TestLLPlaylistChildTokensOnEveryURI(t *testing.T) {
	_, o, base, tok := llAuthEdge(t)
	code, _, master := get(t, base+"/play/a001/index.m3u8?token="+tok)
	variant := regexp.MustCompile(`(?m)^/play/a001/` + regexp.QuoteMeta(o.VariantPlaylist("a001", 0)) + `\?token=\S+$`).FindString(string(master))
	if code != 200 || variant == "" {
		t.Fatalf("master: %d, no variant with a child token:\n%s", code, master)
	}
	code, _, media := get(t, base+variant)
	if code != 200 {
		t.Fatalf("media playlist: %d", code)
	}
	tags, child := childTokens(t, string(media), tok)
	for _, tag := range []string{"#EXT-X-MAP", "#EXT-X-PART", "#EXT-X-PRELOAD-HINT", "#EXT-X-RENDITION-REPORT", "segment"} {
		if tags[tag] == 0 {
			t.Fatalf("no %s URI in the playlist (%v):\n%s", tag, tags, media)
		}
	}
	// The child token opens each kind of resource, and a blocking reload on the variant's URI.
	for _, name := range []string{o.InitName(0), o.PartName("a001", 0, llSeq, 1), o.SegmentName("a001", 0, llSeq-1),
		o.VariantPlaylist("a001", 1) + fmt.Sprintf("?_HLS_msn=%d&_HLS_part=1", llSeq)} {
		sep := "?"
		if strings.Contains(name, "?") {
			sep = "&"
		}
		if code, _, body := get(t, base+"/play/a001/"+name+sep+"token="+child); code != 200 {
			t.Fatalf("%s with the child token: %d %q", name, code, body)
		}
	}
	for uri := range o.Stats().URIs {
		if strings.Contains(uri, "token") {
			t.Fatalf("origin saw %q", uri)
		}
	}
}

// childTokens checks that every URI of an LL media playlist through the edge is a path on the edge carrying one
// child token, not the viewer's own tok, and returns how many URIs each tag has ("segment" for URI lines) and
// the child token.
func childTokens(t *testing.T, body, tok string) (map[string]int, string) {
	t.Helper()
	tags := map[string]int{}
	child := ""
	attr := regexp.MustCompile(`^(#[A-Z-]+):.*URI="([^"]+)"`)
	tokened := regexp.MustCompile(`^/play/a001/[^?]+\?token=([^&"]+)$`)
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		uri, tag := line, "segment"
		if strings.HasPrefix(line, "#") {
			m := attr.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			tag, uri = m[1], m[2]
		}
		m := tokened.FindStringSubmatch(uri)
		if m == nil || strings.Contains(uri, tok) {
			t.Fatalf("%s URI %q does not carry a child token (the viewer's own must not leak either)", tag, uri)
		}
		child = m[1]
		tags[tag]++
	}
	return tags, child
}

// ffprobe plays the LL origin (fMP4 behind EXT-X-MAP) through the edge with a JWT, every child URI with its token.
func TestLLFFprobeThroughTheEdgeWithTokens(t *testing.T) {
	originURL, o := startDemoOrigin(t, synthorigin.Config{Channels: []string{"a001"}, URIs: synthorigin.URIsAbsolute,
		Variants: 2, LL: true, WindowSize: 6})
	base, _ := startEdge(t, withAuth, originURL)
	codecs, err := ffprobeStreams(t, base+"/play/a001/index.m3u8?token="+mintJWT(t, time.Hour, "a001"))
	wantH264AAC(t, codecs, err)
	st := o.Stats()
	if st.Kinds["init"] == 0 || st.Kinds["segment"] == 0 {
		t.Fatalf("ffprobe did not read the init segment and segments through the edge: %v", st.Kinds)
	}
	for uri := range st.URIs {
		if strings.Contains(uri, "token") {
			t.Fatalf("origin saw %q", uri)
		}
	}
}

// hls.js in Chromium plays the LL origin through the edge with a securetoken in low-latency mode: blocking
// reloads, parts and delta updates, each with its child token. hls.js asks for delta updates (_HLS_skip) by
// itself once the origin advertises CAN-SKIP-UNTIL, and the 8-segment window is long enough for the origin to
// skip two, so the video only advances if the edge passes EXT-X-SKIP playlists on intact.
func TestLLPlaysInHeadlessChromium(t *testing.T) {
	originURL, o := startDemoOrigin(t, synthorigin.Config{Channels: []string{"a001"}, URIs: synthorigin.URIsAbsolute,
		LL: true, WindowSize: 8})
	patient := func(c *Config) { withSecureToken(c); c.Server.ReadTimeout = 2 * time.Second }
	e := startPlayerEdge(t, PlayerConfig{}, patient, originURL)
	art := artifactDir(t)
	res := runBrowser(t, []browserCase{{Name: "ll", URL: e.base + "/a001/embed.html?engine=hlsjs&token=" +
		secureToken("a001", "127.0.0.1", time.Hour), Wait: "play", MinTime: 4, TimeoutMS: 40000,
		Screenshot: filepath.Join(art, "embed-ll.png")}})
	r := res["ll"]
	if !r.Waited || r.CurrentTime-r.StartTime <= 4 || r.State != "playing" || r.VideoWidth == 0 || r.Engine != "hlsjs" {
		t.Fatalf("LL video did not advance 4 s: from %.2f to %.2f, state %q, engine %q, width %d, message %q %q, error %q, failed %q, console %q",
			r.StartTime, r.CurrentTime, r.State, r.Engine, r.VideoWidth, r.Message, r.Detail, r.Error, r.FailedRequests, r.ConsoleErrors)
	}
	st := o.Stats()
	if st.BlockingRequests == 0 || st.Kinds["part"] == 0 || st.SkipRequests == 0 || st.DeltaUpdates == 0 {
		t.Fatalf("hls.js did not play low-latency through the edge: %d blocking reloads, %d parts, %d requests with "+
			"_HLS_skip and %d delta updates at the origin", st.BlockingRequests, st.Kinds["part"], st.SkipRequests,
			st.DeltaUpdates)
	}
	for uri := range st.URIs {
		if strings.Contains(uri, "token") {
			t.Fatalf("origin saw %q", uri)
		}
	}
}
