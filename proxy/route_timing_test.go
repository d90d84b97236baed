package proxy

import "testing"

func BenchmarkMatchRoute(b *testing.B) {
	routes := []RouteConfig{{Prefix: "/play/"}}
	raw := []byte("/play/a001/index.m3u8")
	dst := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		rt, err := matchRoute(routes, raw, dst[:0])
		if err != nil || rt.kind != kindPlaylist {
			b.Fatal(err)
		}
	}
}
