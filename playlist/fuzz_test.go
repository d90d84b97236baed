package playlist

import (
	"bytes"
	"errors"
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

// FuzzRewrite checks that the rewriter never panics, that it only fails with its sentinels, and that it is
// lossless: stripping the inserted parameters from its output gives back the input byte for byte.
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
		}
	})
}
