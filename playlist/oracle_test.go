package playlist

import (
	"bytes"
	"net/url"
	"strings"
	"testing"

	"github.com/grafov/m3u8"
)

// TestGrafovOracle lets grafov/m3u8, the package the user named, read the rewritten playlists it understands:
// the same segments in the same order, with the same keys and maps, and every URI carrying the token.
func TestGrafovOracle(t *testing.T) {
	r := mustRewriter(t, Options{ParamNames: []string{"token"}, OriginHosts: []string{"origin.example.com"}})
	decode := func(name string, b []byte) (m3u8.Playlist, m3u8.ListType) {
		t.Helper()
		pl, lt, err := m3u8.DecodeFrom(bytes.NewReader(b), false)
		if err != nil {
			t.Fatalf("%s: grafov decode: %v", name, err)
		}
		return pl, lt
	}
	// carries reports whether u has the viewer's token, or is a URI the rewriter must leave alone.
	carries := func(u string) bool {
		return strings.Contains(u, "?"+testToken) || strings.Contains(u, "&"+testToken) ||
			strings.HasPrefix(u, "skd:") || strings.HasPrefix(u, "data:") || strings.Contains(u, "thirdparty") ||
			strings.Contains(u, "cdn-b.example.net")
	}
	samePath := func(name, in, out string) {
		t.Helper()
		iu, err1 := url.Parse(in)
		ou, err2 := url.Parse(out)
		if err1 != nil || err2 != nil || iu.Path != ou.Path {
			t.Errorf("%s: %q became %q", name, in, out)
		}
		if !carries(out) {
			t.Errorf("%s: %q has no token", name, out)
		}
	}
	check := func(name string, src []byte) {
		t.Helper()
		tmpl, err := r.Parse(src)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out := tmpl.Append(nil, testQuery)
		inPl, inType := decode(name, src)
		outPl, outType := decode(name, out)
		if inType != outType {
			t.Fatalf("%s: type %v became %v", name, inType, outType)
		}
		switch inType {
		case m3u8.MEDIA:
			in, got := inPl.(*m3u8.MediaPlaylist), outPl.(*m3u8.MediaPlaylist)
			is, gs := in.GetAllSegments(), got.GetAllSegments()
			if len(is) == 0 || len(is) != len(gs) {
				t.Fatalf("%s: %d segments became %d", name, len(is), len(gs))
			}
			for i := range is {
				if is[i].SeqId != gs[i].SeqId || is[i].Duration != gs[i].Duration || is[i].Limit != gs[i].Limit || is[i].Offset != gs[i].Offset {
					t.Errorf("%s: segment %d: %+v became %+v", name, i, is[i], gs[i])
				}
				samePath(name, is[i].URI, gs[i].URI)
				if (is[i].Key == nil) != (gs[i].Key == nil) || (is[i].Map == nil) != (gs[i].Map == nil) {
					t.Errorf("%s: segment %d: key or map lost", name, i)
				}
				if is[i].Key != nil && is[i].Key.URI != "" {
					samePath(name, is[i].Key.URI, gs[i].Key.URI)
				}
				if is[i].Map != nil {
					samePath(name, is[i].Map.URI, gs[i].Map.URI)
				}
			}
			if in.Key != nil && in.Key.URI != "" {
				samePath(name, in.Key.URI, got.Key.URI)
			}
			if in.Map != nil {
				samePath(name, in.Map.URI, got.Map.URI)
			}
		case m3u8.MASTER:
			in, got := inPl.(*m3u8.MasterPlaylist), outPl.(*m3u8.MasterPlaylist)
			if len(in.Variants) == 0 || len(in.Variants) != len(got.Variants) {
				t.Fatalf("%s: %d variants became %d", name, len(in.Variants), len(got.Variants))
			}
			for i := range in.Variants {
				if in.Variants[i].Bandwidth != got.Variants[i].Bandwidth || in.Variants[i].Iframe != got.Variants[i].Iframe {
					t.Errorf("%s: variant %d params changed", name, i)
				}
				samePath(name, in.Variants[i].URI, got.Variants[i].URI)
				if len(in.Variants[i].Alternatives) != len(got.Variants[i].Alternatives) {
					t.Fatalf("%s: variant %d alternatives changed", name, i)
				}
				for j, a := range in.Variants[i].Alternatives {
					if a.URI != "" {
						samePath(name, a.URI, got.Variants[i].Alternatives[j].URI)
					}
				}
			}
		default:
			t.Fatalf("%s: unknown type %v", name, inType)
		}
	}
	for _, name := range []string{"astra_live.m3u8", "astra_master.m3u8", "ffmpeg_vod.m3u8", "master_renditions.m3u8",
		"aes_master.m3u8", "aes_media.m3u8", "fmp4_byterange.m3u8", "llhls.m3u8", "steering.m3u8"} {
		check(name, mustRead(t, name))
	}
	check("live10", liveN(10))
	check("vod1000", vodN(1000))
}
