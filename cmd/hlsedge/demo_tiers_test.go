package main

import (
	"encoding/json"
	"io"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hlsedge/hlsedge/bench/synthorigin"
	"github.com/hlsedge/hlsedge/proxy"
)

// TestDemoTiersCostTheHeadendOneFetchPerSegment is `make run-tiers` in-process: the origin, a shield and two
// edges behind it. A player on each edge plays the URL printed for it (the master playlist, its first variant and
// every segment listed, each with the token the playlist gave it), and the headend's printed stats show one
// fetch per segment for the whole fleet, and no token.
func TestDemoTiersCostTheHeadendOneFetchPerSegment(t *testing.T) {
	out, done := startDemo(t, "--tiers")
	out.waitFor(t, regexp.MustCompile(`stop with Ctrl-C`), done)
	printed := out.String()
	edges := regexp.MustCompile(`(?m)^(edge\d): edge (\S+), admin (\S+)\nplay:\s+ffplay '([^']+)'`).FindAllStringSubmatch(printed, -1)
	if len(edges) != 2 || edges[0][1] != "edge1" || edges[1][1] != "edge2" || edges[0][2] == edges[1][2] {
		t.Fatalf("the demo printed no edge line and play line per edge:\n%s", printed)
	}
	stats := regexp.MustCompile(`(?m)^stats: curl (http://\S+/stats)`).FindStringSubmatch(printed)
	if stats == nil {
		t.Fatalf("the demo printed no stats URL for the headend:\n%s", printed)
	}
	shield := regexp.MustCompile(`shield (http://\S+)`).FindStringSubmatch(printed)
	if shield == nil || shield[1] == edges[0][2] || shield[1] == edges[1][2] {
		t.Fatalf("the demo printed no shield of its own:\n%s", printed)
	}

	// get fetches what a player asks for and returns the body; ref is resolved against base, as a player does.
	get := func(base *url.URL, ref string) (*url.URL, string) {
		t.Helper()
		u, err := base.Parse(ref)
		if err != nil {
			t.Fatalf("%q in a playlist from %s: %v", ref, base, err)
		}
		code, body := fetch(t, u.String())
		if code != 200 || body == "" {
			t.Fatalf("%s: %d %q", u, code, body)
		}
		return u, body
	}
	uris := func(playlist string) []string {
		var us []string
		for _, l := range strings.Split(playlist, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				us = append(us, l)
			}
		}
		return us
	}
	// Both players load their media playlists first; then each fetches its segments.
	type player struct {
		edge     string
		playlist *url.URL
		segments []string
	}
	var players []player
	for _, e := range edges {
		play, err := url.Parse(e[4])
		if err != nil {
			t.Fatal(err)
		}
		_, master := get(play, "")
		variants := uris(master)
		if len(variants) == 0 || !strings.Contains(variants[0], "token=") {
			t.Fatalf("master playlist through %s: no variant with a token:\n%s", e[1], master)
		}
		pl, media := get(play, variants[0])
		segs := uris(media)
		if len(segs) == 0 {
			t.Fatalf("media playlist through %s lists no segment:\n%s", e[1], media)
		}
		players = append(players, player{edge: e[1], playlist: pl, segments: segs})
	}
	// The second player also asks its edge for the first player's segments (with its own token), so that the
	// shield is tested on segments both edges want whatever moved in the live window between the two playlist
	// loads.
	p2 := &players[1]
	_, q2, _ := strings.Cut(p2.segments[0], "?")
	for _, s := range players[0].segments {
		name, _, _ := strings.Cut(s, "?")
		if ref := name + "?" + q2; !slices.Contains(p2.segments, ref) {
			p2.segments = append(p2.segments, ref)
		}
	}
	played := map[string]map[string]bool{} // segment path -> edges that played it
	for _, p := range players {
		for _, s := range p.segments {
			u, body := get(p.playlist, s)
			if !strings.Contains(s, "token=") || body[0] != 0x47 {
				t.Fatalf("segment %s through %s: a URI without its token, or no MPEG-TS (%d bytes)", s, p.edge, len(body))
			}
			if played[u.Path] == nil {
				played[u.Path] = map[string]bool{}
			}
			played[u.Path][p.edge] = true
		}
	}
	shared := 0
	for _, by := range played {
		if len(by) == 2 {
			shared++
		}
	}
	if shared == 0 {
		t.Fatalf("the two players shared no segment (%v): the test checks nothing about the shield", played)
	}

	code, body := fetch(t, stats[1])
	var st synthorigin.Stats
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("headend stats: %d %v %s", code, err, body)
	}
	for path, by := range played {
		if n := st.URIs[path]; n != 1 {
			t.Errorf("%s, played through %d edges, cost the headend %d fetches; want 1", path, len(by), n)
		}
	}
	if n := st.Kinds["segment"]; n != uint64(len(played)) {
		t.Errorf("the headend served %d segments for %d distinct ones played: %v", n, len(played), st.URIs)
	}
	for uri := range st.URIs {
		if strings.Contains(uri, "token") {
			t.Errorf("the headend saw %q: viewer tokens stay at the edge", uri)
		}
	}
	t.Logf("%d segments played, %d through both edges; headend: %v", len(played), shared, st.Kinds)
}

// TestDemoNodesReleaseTheStartedOnesWhenOneFails: the tiers demo starts the shield first; an edge that then fails
// to start (here: no tier key to sign its requests to the shield) gets an error naming it, and the demo's stop
// closes the shield's listeners.
func TestDemoNodesReleaseTheStartedOnesWhenOneFails(t *testing.T) {
	d := &demoNodes{listen: "127.0.0.1:0", admin: "127.0.0.1:0", stderr: io.Discard}
	shield, err := d.start("shield", demoTierEdges, "http://127.0.0.1:1", func(cfg *proxy.Config) {
		cfg.Tier = proxy.TierConfig{Role: "shield", Key: strings.Repeat("k", 32)}
	})
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{shield.ln.Addr().String(), shield.adminAddr()}
	dial := func(addr string) error {
		c, err := net.DialTimeout("tcp", addr, guard)
		if err == nil {
			c.Close()
		}
		return err
	}
	for _, a := range addrs {
		if err := dial(a); err != nil {
			t.Fatalf("the shield does not listen on %s: %v", a, err)
		}
	}
	_, err = d.start("edge1", 0, "http://"+addrs[0], func(cfg *proxy.Config) { cfg.Origins[0].Shield = true })
	if err == nil || !strings.Contains(err.Error(), "edge1: invalid config") || !strings.Contains(err.Error(), "'tier.key'") {
		t.Fatalf("an edge without a tier key: %v", err)
	}
	if len(d.started) != 1 {
		t.Fatalf("%d nodes started, want the shield alone", len(d.started))
	}
	d.stop()
	for _, a := range addrs {
		if err := dial(a); err == nil {
			t.Errorf("the shield still listens on %s after stop", a)
		}
	}
}
