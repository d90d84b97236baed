package playlist

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// tokenEdge is a tiny loopback edge: it refuses every request without the token (playlists, key, segments)
// and, when rewriting, serves playlists through the Rewriter with the request's token.
type tokenEdge struct {
	dir     string
	token   string
	rewrite *Rewriter // nil: serve playlists as the origin wrote them

	mu      sync.Mutex
	served  []string
	refused []string
}

func (e *tokenEdge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("token") != e.token {
		e.mu.Lock()
		e.refused = append(e.refused, r.URL.Path)
		e.mu.Unlock()
		http.Error(w, "token required", http.StatusForbidden)
		return
	}
	name := filepath.Join(e.dir, filepath.FromSlash(filepath.Clean("/"+r.URL.Path)))
	body, err := os.ReadFile(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if strings.HasSuffix(name, ".m3u8") {
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		if e.rewrite != nil {
			tmpl, err := e.rewrite.Parse(body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			body = tmpl.Append(nil, AppendQueryParam(nil, "token", r.URL.Query().Get("token")))
		}
	}
	e.mu.Lock()
	e.served = append(e.served, r.URL.Path)
	e.mu.Unlock()
	w.Write(body)
}

func (e *tokenEdge) log() (served, refused []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.served...), append([]string(nil), e.refused...)
}

// serveLoopback serves h on 127.0.0.1 until the test ends and returns its host:port.
func serveLoopback(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// makeStream writes /play/ch/ under dir: two AES-128 variants made by ffmpeg, one with relative segment URIs
// and one with origin-absolute ones (Astra's default), an origin-absolute key URI, and a master playlist.
func makeStream(t *testing.T, dir, origin string) {
	t.Helper()
	ch := filepath.Join(dir, "play", "ch")
	key := make([]byte, 16)
	iv := make([]byte, 16)
	rand.Read(key)
	rand.Read(iv)
	keyFile := filepath.Join(ch, "enc.key")
	info := filepath.Join(dir, "keyinfo")
	for _, v := range []string{"v0", "v1"} {
		if err := os.MkdirAll(filepath.Join(ch, v), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(keyFile, key, 0o644); err != nil {
		t.Fatal(err)
	}
	keyinfo := fmt.Sprintf("http://%s/play/ch/enc.key\n%s\n%s\n", origin, keyFile, hex.EncodeToString(iv))
	if err := os.WriteFile(info, []byte(keyinfo), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, size := range []string{"160x90", "320x180"} {
		v := fmt.Sprintf("v%d", i)
		args := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y",
			"-f", "lavfi", "-i", "testsrc=size=" + size + ":rate=10:duration=3",
			"-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-pix_fmt", "yuv420p",
			"-f", "hls", "-hls_time", "1", "-hls_list_size", "0", "-hls_playlist_type", "vod",
			"-hls_key_info_file", info,
			"-hls_segment_filename", filepath.Join(ch, v, "seg%d.ts")}
		if i == 1 {
			args = append(args, "-hls_base_url", fmt.Sprintf("http://%s/play/ch/%s/", origin, v))
		}
		args = append(args, filepath.Join(ch, v, "index.m3u8"))
		if out, err := run(t, "ffmpeg", args...); err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, out)
		}
	}
	// A TS segment starts with the 0x47 sync byte; an encrypted one must not, or the key is not exercised.
	if seg, err := os.ReadFile(filepath.Join(ch, "v0", "seg0.ts")); err != nil || len(seg) == 0 || seg[0] == 0x47 {
		t.Fatalf("segment is missing or not encrypted: %v", err)
	}
	master := "#EXTM3U\n" +
		"#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=160x90\nv0/index.m3u8\n" +
		"#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180\nhttp://" + origin + "/play/ch/v1/index.m3u8\n"
	if err := os.WriteFile(filepath.Join(ch, "index.m3u8"), []byte(master), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFFprobeThroughTokenEdge plays a multi-variant AES-128 stream with the real ffprobe through an edge that
// wants the token on every request: it works only when the rewritten playlists carry it everywhere.
func TestFFprobeThroughTokenEdge(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ffmpeg and ffprobe")
	}
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required (make deps installs it): %v", tool, err)
		}
	}
	// The origin must never be reached directly: its absolute URIs have to become edge URIs.
	var originHits sync.Map
	origin := serveLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originHits.Store(r.URL.Path, true)
		http.Error(w, "viewers must come through the edge", http.StatusForbidden)
	}))
	dir := t.TempDir()
	makeStream(t, dir, origin)

	const token = "s3cr3t+/=&x"
	query := string(AppendQueryParam(nil, "token", token))
	probe := func(rw *Rewriter) (string, error, *tokenEdge) {
		e := &tokenEdge{dir: dir, token: token, rewrite: rw}
		addr := serveLoopback(t, e)
		out, err := run(t, "ffprobe", "-v", "error", "-rw_timeout", "10000000",
			"-show_entries", "stream=codec_name", "-of", "csv=p=0",
			"http://"+addr+"/play/ch/index.m3u8?"+query)
		return out, err, e
	}

	rw := mustRewriter(t, Options{ParamNames: []string{"token"}, OriginHosts: []string{origin}})
	out, err, e := probe(rw)
	served, refused := e.log()
	if err != nil || strings.Count(out, "h264") < 2 {
		t.Fatalf("ffprobe through the rewriting edge: %v\n%s\nserved %q\nrefused %q", err, out, served, refused)
	}
	if len(refused) != 0 {
		t.Errorf("requests without the token: %q", refused)
	}
	for _, want := range []string{"/play/ch/index.m3u8", "/play/ch/v0/index.m3u8", "/play/ch/v1/index.m3u8",
		"/play/ch/enc.key", "/play/ch/v0/seg0.ts", "/play/ch/v1/seg0.ts"} {
		if !contains(served, want) {
			t.Errorf("edge never served %s; served %q", want, served)
		}
	}
	originHits.Range(func(k, _ any) bool {
		t.Errorf("viewer bypassed the edge: origin got %s", k)
		return true
	})

	// The same stream through an edge that does not rewrite fails: the child URIs lack the token.
	out, err, e = probe(nil)
	_, refused = e.log()
	if err == nil && strings.Contains(out, "h264") {
		t.Fatalf("ffprobe read the stream without rewriting; the test proves nothing:\n%s", out)
	}
	if len(refused) == 0 {
		t.Errorf("without rewriting no request lacked the token")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
