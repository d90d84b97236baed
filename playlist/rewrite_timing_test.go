package playlist

import (
	"bytes"
	"testing"

	"github.com/grafov/m3u8"
)

// The per-viewer fast path: one template, one reused buffer, one token.
func benchAppend(b *testing.B, src []byte) {
	r := mustRewriter(b, Options{ParamNames: []string{"token"}, OriginHosts: []string{"origin.example.com"}})
	tmpl, err := r.Parse(src)
	if err != nil {
		b.Fatal(err)
	}
	query := AppendQueryParam(nil, "token", "5f2b3c4d5e6f708192a3b4c5d6e7f80912345678-9a3f-1700000300-1700000000")
	dst := make([]byte, 0, tmpl.Size(len(query)))
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		dst = tmpl.Append(dst[:0], query)
	}
}

func BenchmarkAppendLive10(b *testing.B)  { benchAppend(b, liveN(10)) }
func BenchmarkAppendVOD1000(b *testing.B) { benchAppend(b, vodN(1000)) }
func BenchmarkAppendLLHLS(b *testing.B)   { benchAppend(b, mustRead(b, "llhls.m3u8")) }
func BenchmarkAppendMaster(b *testing.B)  { benchAppend(b, mustRead(b, "master_renditions.m3u8")) }
func BenchmarkAppendLive10Parallel(b *testing.B) {
	r := mustRewriter(b, Options{ParamNames: []string{"token"}, OriginHosts: []string{"origin.example.com"}})
	tmpl, err := r.Parse(liveN(10))
	if err != nil {
		b.Fatal(err)
	}
	query := AppendQueryParam(nil, "token", "5f2b3c4d5e6f708192a3b4c5d6e7f80912345678-9a3f-1700000300-1700000000")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]byte, 0, tmpl.Size(len(query)))
		for pb.Next() {
			dst = tmpl.Append(dst[:0], query)
		}
	})
}

// Parse runs once per origin playlist version, not per viewer.
func benchParse(b *testing.B, src []byte) {
	r := mustRewriter(b, Options{ParamNames: []string{"token"}, OriginHosts: []string{"origin.example.com"}})
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Parse(src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseLive10(b *testing.B)  { benchParse(b, liveN(10)) }
func BenchmarkParseVOD1000(b *testing.B) { benchParse(b, vodN(1000)) }

// The alternative the ratio is measured against: grafov/m3u8 decode + encode of the same input (which, for
// live playlists, also loses segments and tags; see REFERENCE.md).
func benchGrafov(b *testing.B, src []byte) {
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		pl, _, err := m3u8.DecodeFrom(bytes.NewReader(src), false)
		if err != nil {
			b.Fatal(err)
		}
		_ = pl.Encode().Bytes()
	}
}

func BenchmarkGrafovLive10(b *testing.B)  { benchGrafov(b, liveN(10)) }
func BenchmarkGrafovVOD1000(b *testing.B) { benchGrafov(b, vodN(1000)) }
