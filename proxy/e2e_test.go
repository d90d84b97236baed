package proxy

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/bench"
)

// startDemoOrigin runs the synthetic Astra-like origin on loopback.
func startDemoOrigin(t *testing.T, cfg bench.OriginConfig) (string, *bench.Origin) {
	t.Helper()
	o, err := bench.NewOrigin(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go o.Serve(ln)
	t.Cleanup(func() { o.Shutdown() })
	return "http://" + ln.Addr().String(), o
}

// ffprobeStreams runs the real ffprobe against url and returns the codec names it found.
func ffprobeStreams(t *testing.T, url string, extra ...string) ([]string, error) {
	t.Helper()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatal("ffprobe is missing: `make test` installs ffmpeg (apt-get install ffmpeg)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"-v", "error", "-rw_timeout", "10000000", "-show_streams", "-of", "json"}, extra...)
	out, err := exec.CommandContext(ctx, "ffprobe", append(args, url)...).CombinedOutput()
	if err != nil {
		return nil, &probeError{err: err, out: string(out)}
	}
	var res struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, &probeError{err: err, out: string(out)}
	}
	var codecs []string
	for _, s := range res.Streams {
		codecs = append(codecs, s.CodecName)
	}
	return codecs, nil
}

type probeError struct {
	err error
	out string
}

func (e *probeError) Error() string { return e.err.Error() + ": " + e.out }

func wantH264AAC(t *testing.T, codecs []string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	h264, aac := 0, 0
	for _, c := range codecs {
		switch c {
		case "h264":
			h264++
		case "aac":
			aac++
		}
	}
	if h264 < 1 || aac < 1 {
		t.Fatalf("ffprobe found %v, want h264 and aac", codecs)
	}
}

func TestFFprobePlaysThroughTheEdge(t *testing.T) {
	originURL, _ := startDemoOrigin(t, bench.OriginConfig{Channels: []string{"a001"}, URIs: bench.URIsAbsolute})
	base, _ := startEdge(t, nil, originURL)
	codecs, err := ffprobeStreams(t, base+"/play/a001/index.m3u8")
	wantH264AAC(t, codecs, err)
	if len(codecs) != 2 {
		t.Fatalf("ffprobe found %v, want exactly one h264 and one aac stream", codecs)
	}
}

// TestFFprobeWithTokensEndToEnd runs the real player path: Astra absolute URIs with variants, a JWT and a
// securetoken, and a playlist whose segment lost its token.
func TestFFprobeWithTokensEndToEnd(t *testing.T) {
	originURL, origin := startDemoOrigin(t, bench.OriginConfig{Channels: []string{"a001", "st1"}, URIs: bench.URIsAbsolute, Variants: 2})
	base, _ := startEdge(t, withAuth, originURL)

	jwtTok := mintJWT(t, time.Hour, "a001")
	codecs, err := ffprobeStreams(t, base+"/play/a001/index.m3u8?token="+jwtTok)
	wantH264AAC(t, codecs, err)

	now := time.Now().Unix()
	st := authz.MintSecureToken(testSTSecret, "st1", "127.0.0.1", now-300, now-300+3600, authz.NewSalt())
	codecs, err = ffprobeStreams(t, base+"/st1/index.m3u8?token="+st)
	wantH264AAC(t, codecs, err)

	// A media playlist fetched with a valid token, then with the token removed from its segment URIs only: if
	// segments were not checked, ffprobe would still play it.
	code, _, master := get(t, base+"/play/a001/index.m3u8?token="+jwtTok)
	if code != 200 {
		t.Fatalf("master: %d", code)
	}
	variant := regexp.MustCompile(`(?m)^(/play/a001/[^\s]+\.m3u8\?token=[^\s]+)$`).FindString(string(master))
	if variant == "" {
		t.Fatalf("no edge-relative variant URI with a token in the master:\n%s", master)
	}
	code, _, media := get(t, base+variant)
	if code != 200 {
		t.Fatalf("media playlist: %d", code)
	}
	stripped := regexp.MustCompile(`(?m)^(/play/a001/[^\s?]+\.ts)\?token=[^\s]+$`).ReplaceAllString(string(media), base+"$1")
	if stripped == string(media) {
		t.Fatalf("media playlist has no segment URI with a token to strip:\n%s", media)
	}
	file := filepath.Join(t.TempDir(), "stripped.m3u8")
	if err := os.WriteFile(file, []byte(stripped), 0o644); err != nil {
		t.Fatal(err)
	}
	if codecs, err := ffprobeStreams(t, file, "-protocol_whitelist", "file,http,tcp"); err == nil {
		t.Fatalf("ffprobe played a playlist whose segments carry no token (found %v): segments are not checked", codecs)
	}

	for uri := range origin.Stats().URIs {
		if strings.Contains(uri, "token") {
			t.Fatalf("origin saw %q: tokens must be stripped before the origin", uri)
		}
	}
}
