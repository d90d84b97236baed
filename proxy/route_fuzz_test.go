package proxy

import (
	"bytes"
	"testing"
)

// FuzzMatchRoute: whatever the raw path, a matched origin path stays under the route's origin prefix, holds no
// dot segment, and its channel is a plain name.
func FuzzMatchRoute(f *testing.F) {
	for _, s := range []string{"/play/a001/index.m3u8", "/a001/embed.html", "/play/../x", "/play/a001/%2e%2e/x.ts",
		"/play/a001//x.ts", "/", "", "/play/a001/seg.ts\x00", "/st1/index.m3u8", "/play/a\\b/x.ts"} {
		f.Add([]byte(s))
	}
	routes := []RouteConfig{{Prefix: "/play/", OriginPrefix: "/play/"}, {Prefix: "/", OriginPrefix: "/play/"}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		rt, err := matchRoute(routes, raw, nil)
		if err != nil {
			return
		}
		p := rt.originPath
		if !bytes.HasPrefix(p, []byte("/play/")) {
			t.Fatalf("%q mapped outside the origin prefix: %q", raw, p)
		}
		for _, seg := range bytes.Split(p[1:], []byte("/")) {
			if len(seg) == 0 || bytes.Equal(seg, []byte(".")) || bytes.Equal(seg, []byte("..")) {
				t.Fatalf("%q mapped to %q with an empty or dot segment", raw, p)
			}
		}
		if bytes.ContainsAny(p, "%\\?#") || !validChannel(rt.channel) {
			t.Fatalf("%q mapped to %q (channel %q)", raw, p, rt.channel)
		}
	})
}

// FuzzParseRange: a satisfiable range always lies inside the body.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=5-", "bytes=-3", "bytes=9-2", "bytes=0-0,5-6", "items=1-2", "bytes=-0"} {
		f.Add([]byte(s), 10)
	}
	f.Fuzz(func(t *testing.T, h []byte, size int) {
		if size < 0 || size > 1<<30 {
			return
		}
		start, end, ok := parseRange(h, size)
		if !ok {
			return
		}
		if size == 0 {
			return
		}
		if start < 0 || end >= size || start > end {
			t.Fatalf("range %q of %d gave %d-%d", h, size, start, end)
		}
	})
}

func TestParseRange(t *testing.T) {
	f := func(h string, size, start, end int, ok bool) {
		t.Helper()
		s, e, k := parseRange([]byte(h), size)
		if k != ok || (ok && (s != start || e != end)) {
			t.Fatalf("parseRange(%q, %d) = %d, %d, %v; want %d, %d, %v", h, size, s, e, k, start, end, ok)
		}
	}
	f("bytes=0-9", 10, 0, 9, true)
	f("bytes=2-5", 10, 2, 5, true)
	f("bytes=5-", 10, 5, 9, true)
	f("bytes=-3", 10, 7, 9, true)
	f("bytes=-30", 10, 0, 9, true)
	f("bytes=3-100", 10, 3, 9, true)
	f("bytes=10-", 10, 0, 0, false)
	f("bytes=5-2", 10, 0, 0, false)
	f("bytes=-0", 10, 0, 0, false)
	f("bytes=a-b", 10, 0, 0, false)
	f("bytes=0-1,3-4", 10, 0, 9, true) // several ranges: the whole body
	f("items=0-1", 10, 0, 9, true)
}

// The class table refuses exactly the bytes the rule names, and lets into channel names exactly the ones that rule
// names, all 256 of them checked.
func TestBadPathByteIsTheRule(t *testing.T) {
	for c := range 256 {
		b := byte(c)
		want := b <= 0x20 || b >= 0x7f || b == '\\' || b == '%' || b == '#' || b == '?'
		if badPathByte(b) != want {
			t.Errorf("byte %#x: refused %v, want %v", c, !want, want)
		}
		inChannel := b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-' || b == '.'
		if validChannel([]byte{b}) != inChannel {
			t.Errorf("byte %#x: allowed in a channel name %v, want %v", c, !inChannel, inChannel)
		}
	}
}
