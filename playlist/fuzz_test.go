package playlist

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// fuzzQuery marks every insertion with a byte that inputs under test do not contain, so that the inserted
// bytes can be found and stripped again.
var fuzzQuery = []byte("tok=\x01v\x01")

// strip removes every inserted separator+query; it fails when an insertion has no separator in front.
func strip(t *testing.T, out []byte) ([]byte, int) {
	t.Helper()
	var b []byte
	n := 0
	for {
		i := bytes.Index(out, fuzzQuery)
		if i < 0 {
			return append(b, out...), n
		}
		if i == 0 || out[i-1] != '?' && out[i-1] != '&' {
			t.Fatalf("insertion without separator at %d in %q", i, out)
		}
		b = append(b, out[:i-1]...)
		out = out[i+len(fuzzQuery):]
		n++
	}
}

// FuzzRewrite checks that the rewriter never panics, that it only fails with its sentinels, that it is
// lossless (stripping the inserted parameters from its output gives back the input byte for byte), and that a
// URI line given the query is one a browser fetches from the edge's host.
func FuzzRewrite(f *testing.F) {
	for _, name := range []string{"astra_live.m3u8", "astra_master.m3u8", "ffmpeg_vod.m3u8", "master_renditions.m3u8",
		"aes_master.m3u8", "aes_media.m3u8", "fmp4_byterange.m3u8", "llhls.m3u8", "steering.m3u8", "define.m3u8"} {
		f.Add(mustRead(f, name))
	}
	plain := mustRewriter(f, Options{ParamNames: []string{"tok"}, MaxSize: 1 << 16})
	full := mustRewriter(f, Options{ParamNames: []string{"token", "tok"}, OriginHosts: []string{"origin", "[::1]:80", "h:8"},
		MaxSize: 1 << 16})
	based := mustRewriter(f, Options{ParamNames: []string{"tok"}, OriginHosts: []string{"origin"}, PublicBase: "https://edge",
		MaxSize: 1 << 16})
	f.Fuzz(func(t *testing.T, src []byte) {
		marked := bytes.IndexByte(src, 0x01) >= 0
		for _, r := range []*Rewriter{plain, full, based} {
			tmpl, err := r.Parse(src)
			if err != nil {
				if !errors.Is(err, ErrNotPlaylist) && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("unexpected error: %v", err)
				}
				if tmpl != nil {
					t.Fatalf("template with error")
				}
				continue
			}
			empty := tmpl.Append(nil, nil)
			out := tmpl.Append(nil, fuzzQuery)
			if len(out) != tmpl.Size(len(fuzzQuery)) || len(empty) != tmpl.Size(0) {
				t.Fatalf("Size disagrees with Append")
			}
			// QueriesPlaylists tells whether AppendMedia reads its query argument at all: the proxy skips building
			// that query for a media playlist without other playlists' URIs.
			if differs := !bytes.Equal(out, tmpl.AppendMedia(nil, nil, fuzzQuery)); differs != tmpl.QueriesPlaylists() {
				t.Fatalf("QueriesPlaylists() = %v, but the playlists' query changes the output: %v", tmpl.QueriesPlaylists(), differs)
			}
			if len(tmpl.Foreign()) > maxForeign {
				t.Fatalf("%d foreign URIs", len(tmpl.Foreign()))
			}
			for _, s := range tmpl.Foreign() {
				if bytes.ContainsAny([]byte(s), "?#") {
					t.Fatalf("foreign URI %q keeps its query or fragment", s)
				}
			}
			if marked {
				continue
			}
			back, n := strip(t, out)
			if n != tmpl.URICount() {
				t.Fatalf("%d insertions, URICount() = %d", n, tmpl.URICount())
			}
			if !bytes.Equal(back, empty) {
				t.Fatalf("stripped output differs from the empty-query output:\n%q\n%q", back, empty)
			}
			// Without origins to rewrite and with none of its own parameters present, the rewriter only inserts.
			if r == plain && !bytes.Contains(src, []byte("tok")) && !bytes.Equal(back, src) {
				t.Fatalf("not lossless:\n in %q\nout %q", src, back)
			}
			public := ""
			if r == based {
				public = "edge"
			}
			for _, line := range strings.Split(string(out), "\n") {
				// Variables are FuzzURI's business: here the player would substitute them first.
				if !strings.Contains(line, string(fuzzQuery)) || strings.Contains(line, "{$") {
					continue
				}
				if l := strings.TrimLeft(line, " \t"); l[0] != '#' && !landsOn(line, public) {
					t.Fatalf("the token leaves the edge's host: %q", line)
				}
			}
		}
	})
}

// FuzzURI puts one URI in every kind of URI place (attribute, variable, line) and checks against the WHATWG
// oracle that wherever the query goes, the player's request stays on the edge's host (or the PublicBase host)
// whether the playlist came over http or https. TestBrowserCorpus checks the oracle against Node.
func FuzzURI(f *testing.F) {
	for _, u := range oddURIs {
		f.Add(u)
	}
	rewriters := []struct {
		r      *Rewriter
		public string
	}{
		{mustRewriter(f, Options{ParamNames: []string{"tok"}}), ""},
		{mustRewriter(f, Options{ParamNames: []string{"tok"}, OriginHosts: []string{"origin.example.com", "[::1]:80", "h:8"}}), ""},
		{mustRewriter(f, Options{ParamNames: []string{"tok"}, OriginHosts: []string{"origin.example.com"},
			PublicBase: "https://edge.example.com/hls"}), "edge.example.com"},
	}
	f.Fuzz(func(t *testing.T, u string) {
		// uriPlaylist's own syntax, and the marker of the inserted query.
		if strings.ContainsAny(u, "\"\n") || strings.Contains(u, "{$") || strings.Contains(u, string(fuzzQuery)) {
			return
		}
		for _, rw := range rewriters {
			tmpl, err := rw.r.Parse([]byte(uriPlaylist(u)))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			for place, got := range placedURIs(t, string(tmpl.Append(nil, fuzzQuery)), u) {
				if strings.Contains(got, string(fuzzQuery)) && !landsOn(got, rw.public) {
					t.Fatalf("place %d: %q became %q: the token leaves the edge's host", place, u, got)
				}
			}
		}
	})
}
