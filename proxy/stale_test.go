package proxy

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/internal/testkit"
)

// While the origin fails (5xx, refused, timed out, closed), a live playlist is served from the last good copy
// for cache.playlist_stale_if_error, with its Age; after the window the viewer gets 502/504 as before.
func TestStalePlaylistWhileTheOriginFails(t *testing.T) {
	// timeout is upstream.timeout: short only where the edge timing out is the failure under test, so that a
	// slow machine cannot turn an answer the origin gave into a timeout.
	f := func(name string, wantCode int, timeout time.Duration, fail func(w http.ResponseWriter, r *http.Request)) {
		t.Run(name, func(t *testing.T) {
			var failing atomic.Bool
			o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				if failing.Load() {
					fail(w, r)
					return
				}
				w.Write([]byte(testPlaylist))
			})
			clock := newTestClock()
			base, _ := startEdgeAt(t, clock, func(c *Config) { c.Upstream.Timeout = timeout }, o.url)
			// With the short timeout a loaded machine may miss it on this first, healthy fetch (the edge answers
			// 504 and caches nothing); the test needs one good copy, so it asks until it has one.
			var (
				code int
				h    http.Header
				body []byte
			)
			eventually(t, "a fresh playlist from the healthy origin", func() bool {
				code, h, body = get(t, base+"/play/a001/index.m3u8?token=alice")
				return code != http.StatusGatewayTimeout
			})
			if code != 200 || h.Get("Age") != "" {
				t.Fatalf("fresh: %d Age %q", code, h.Get("Age"))
			}
			failing.Store(true)
			clock.Add(3 * time.Second) // past playlist_ttl (1s), within playlist_stale_if_error (10s)
			code, h, stale := get(t, base+"/play/a001/index.m3u8?token=alice")
			if code != 200 || string(stale) != string(body) || h.Get("Age") != "3" {
				t.Fatalf("origin failing, within the window: %d Age %q %.60q; want 200, Age 3 and the last good playlist",
					code, h.Get("Age"), stale)
			}
			clock.Add(9 * time.Second) // 1s fresh + 10s stale are over
			code, _, body = get(t, base+"/play/a001/index.m3u8?token=alice")
			if code != wantCode {
				t.Fatalf("after the window: %d %.60q, want %d", code, body, wantCode)
			}
		})
	}
	const long = 20 * time.Second
	f("5xx", 502, long, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	f("closed without answer", 502, long, func(w http.ResponseWriter, r *http.Request) {
		c, _, _ := w.(http.Hijacker).Hijack()
		c.Close()
	})
	f("timed out", 504, 300*time.Millisecond, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	f("not a playlist", 502, long, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>maintenance</html>")) })
}

func TestStalePlaylistRefusedOriginAndOff(t *testing.T) {
	// Held: once the origin closes, its port refuses connections until the test ends, whoever else listens.
	ln := testkit.HeldListener(t)
	o := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(testPlaylist)) })}
	go o.Serve(ln)
	url := "http://" + ln.Addr().String()

	clock := newTestClock()
	base, _ := startEdgeAt(t, clock, nil, url)
	off, _ := startEdgeAt(t, clock, func(c *Config) { zero := time.Duration(0); c.Cache.PlaylistStaleIfError = &zero }, url)
	for _, b := range []string{base, off} {
		if code, _, _ := get(t, b+"/play/a001/index.m3u8"); code != 200 {
			t.Fatalf("fresh: %d", code)
		}
	}
	o.Close() // the origin is gone: connections refused
	clock.Add(2 * time.Second)
	if code, h, _ := get(t, base+"/play/a001/index.m3u8"); code != 200 || h.Get("Age") != "2" {
		t.Fatalf("refused origin: %d Age %q, want the stale playlist", code, h.Get("Age"))
	}
	if code, _, body := get(t, off+"/play/a001/index.m3u8"); code != 502 || !strings.Contains(string(body), "refused") {
		t.Fatalf("playlist_stale_if_error 0: %d %q, want 502", code, body)
	}
	// Segments are not covered: they have segment_ttl.
	if code, _, _ := get(t, base+"/play/a001/seg7.ts"); code != 502 {
		t.Fatalf("segment from a refused origin: %d, want 502", code)
	}
}
