package proxy

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/bench/synthorigin"
)

// A reload gives LL-HLS the new upstream.max_hold and origin hosts, and keeps what the edge learned from the
// playlists it took: the next blocking reload of a playlist not seen yet waits the new hold, not the old one,
// and parts named by absolute URIs on the new origin's host are recognised and streamed.
func TestReloadAppliesLLHoldAndOriginHosts(t *testing.T) {
	clk := newLLClock()
	// Absolute URIs: a part is only recognised as one when its host is a configured origin's.
	urlA, oA := startLLOrigin(t, clk, synthorigin.Config{URIs: synthorigin.URIsAbsolute, Variants: 2})
	urlB, oB := startLLOrigin(t, clk, synthorigin.Config{URIs: synthorigin.URIsAbsolute, Variants: 2})
	cfg := func(origin string, maxHold time.Duration) *Config {
		c := &Config{Origins: []OriginConfig{{URL: origin}}}
		c.Auth.Disabled = true
		c.Upstream.MaxHold = maxHold
		return c
	}
	r := newReloadable(t, cfg(urlA, time.Hour), Options{Now: clk.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	base, _ := r.serve()
	ll := r.srv.ll
	v0, v1 := "/play/a001/"+oA.VariantPlaylist("a001", 0), "/play/a001/"+oA.VariantPlaylist("a001", 1)
	partKey := func(k int) []byte { return []byte("/play/a001/" + oA.PartName("a001", 0, llSeq, k)) }

	if code, _, body := get(t, base+v0); code != 200 || !strings.Contains(string(body), oA.PartName("a001", 0, llSeq, 1)) {
		t.Fatalf("playlist from a: %d\n%s", code, body)
	}
	if !ll.isPart(partKey(1)) || ll.holdWait([]byte(v1)) != time.Hour {
		t.Fatalf("before the reload: part 1 known %v, hold of an unseen playlist %v", ll.isPart(partKey(1)),
			ll.holdWait([]byte(v1)))
	}

	// Long enough that the edge has sent the blocking request to the origin before its own wait runs out, however
	// loaded the machine; an hour short of the old hold.
	const hold = time.Second
	r.reload(cfg(urlB, hold))
	// Learned before the reload: still known.
	if !ll.isPart(partKey(1)) || ll.holdWait([]byte(v0)) != hold {
		t.Fatalf("after the reload: part 1 known %v, hold of the seen playlist %v", ll.isPart(partKey(1)),
			ll.holdWait([]byte(v0)))
	}

	// The new hold bounds the wait for a playlist the edge has not seen: the origin, on a clock that does not
	// move, holds the request for ever, so only the edge's own hold ends it. With the old hold the viewer would
	// wait an hour, and the client gives up long before.
	code, _, body := get(t, base+v1+fmt.Sprintf("?_HLS_msn=%d&_HLS_part=3", llSeq))
	if code != 503 {
		t.Fatalf("blocking reload past the new hold: %d %q", code, body)
	}
	// The origin counts the request when it reads it, which may be after the edge gave up on it.
	eventually(t, "the blocking request at the new origin", func() bool { return oB.Stats().BlockingRequests >= 1 })
	if st := oB.Stats(); st.BlockingRequests != 1 || oA.Stats().BlockingRequests != 0 {
		t.Fatalf("blocking requests: b %d, a %d", st.BlockingRequests, oA.Stats().BlockingRequests)
	}
	if n := ll.holdTimeouts.Get(); n != 1 {
		t.Fatalf("%d hold timeouts counted", n)
	}

	// Parts first listed by the new origin, under its own host, are recognised as parts and streamed: a was last
	// asked when part 2 was hinted, b lists part 3 and hints part 4.
	clk.AdvanceTo(oB.PartAvailable(llSeq, 3))
	if ll.isPart(partKey(3)) || ll.isPart(partKey(4)) {
		t.Fatal("parts 3 or 4 known before any playlist listed them")
	}
	code, _, pl := get(t, base+v0)
	if code != 200 || !strings.Contains(string(pl), "\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"/play/a001/"+oB.PartName("a001", 0, llSeq, 4)) {
		t.Fatalf("playlist from b: %d\n%s", code, pl)
	}
	if !ll.isPart(partKey(3)) || !ll.isPart(partKey(4)) {
		t.Fatalf("the parts on the new origin's host %s are not known as parts", strings.TrimPrefix(urlB, "http://"))
	}
	if code, _, _ := get(t, base+"/play/a001/"+oB.PartName("a001", 0, llSeq, 3)); code != 200 {
		t.Fatalf("part 3 from b: %d", code)
	}
	if n := ll.partsStreamed.Get(); n != 1 {
		t.Fatalf("%d parts streamed", n)
	}
	if oB.Stats().Kinds["part"] != 1 || oA.Stats().Kinds["part"] != 0 {
		t.Fatalf("parts: b %d, a %d", oB.Stats().Kinds["part"], oA.Stats().Kinds["part"])
	}
}
