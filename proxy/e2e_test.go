package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/bench/synthorigin"
)

// startDemoOrigin runs the synthetic Astra-like origin on loopback.
func startDemoOrigin(t *testing.T, cfg synthorigin.Config) (string, *synthorigin.Origin) {
	t.Helper()
	o, err := synthorigin.New(cfg)
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
	originURL, _ := startDemoOrigin(t, synthorigin.Config{Channels: []string{"a001"}, URIs: synthorigin.URIsAbsolute})
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
	originURL, origin := startDemoOrigin(t, synthorigin.Config{Channels: []string{"a001", "st1"}, URIs: synthorigin.URIsAbsolute, Variants: 2})
	base, _ := startEdge(t, withAuth, originURL)

	jwtTok := mintJWT(t, time.Hour, "a001")
	codecs, err := ffprobeStreams(t, base+"/play/a001/index.m3u8?token="+jwtTok)
	wantH264AAC(t, codecs, err)

	now := time.Now().Unix()
	st := token.MintSecureToken(testSTSecret, "st1", "127.0.0.1", now-300, now-300+3600, token.NewSalt())
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

// TestCoalescingMeasuredAtTheDemoOrigin is the foundation's acceptance check as written: 200 viewers ask for a
// segment the edge has not cached yet, and the origin's own /stats shows one fetch.
func TestCoalescingMeasuredAtTheDemoOrigin(t *testing.T) {
	// The origin holds the leader's fetch (a delay nothing waits out) until every viewer has queued behind it;
	// its Shutdown then releases the held response.
	originURL, origin := startDemoOrigin(t, synthorigin.Config{Channels: []string{"a001"}, URIs: synthorigin.URIsPath, Delay: time.Hour})
	base, srv := startEdge(t, func(c *Config) { c.Upstream.Timeout = time.Minute }, originURL)
	first, _ := origin.Window()
	name := "/play/a001/" + origin.SegmentName("a001", 0, first)
	const viewers = 200
	bodies := make([][]byte, viewers)
	var wg sync.WaitGroup
	for i := 0; i < viewers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := client.Get(base + name + "?token=v" + strconv.Itoa(i))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("viewer %d: %d", i, resp.StatusCode)
				return
			}
			bodies[i], _ = io.ReadAll(resp.Body)
		}(i)
	}
	waitHeld(t, origin, 1)
	eventually(t, "every viewer but the leader queued on its fetch", func() bool {
		return srv.fetches.Waiters(name) == viewers-1
	})
	origin.Shutdown()
	wg.Wait()
	if t.Failed() {
		return
	}
	for i := range bodies {
		if len(bodies[i]) == 0 || !bytes.Equal(bodies[i], bodies[0]) {
			t.Fatalf("viewer %d got %d bytes, viewer 0 got %d: all must get identical bytes", i, len(bodies[i]), len(bodies[0]))
		}
	}
	var fetches uint64
	for uri, n := range origin.Stats().URIs {
		if strings.HasPrefix(uri, name) {
			fetches += n
		}
	}
	if fetches != 1 {
		t.Fatalf("the origin's /stats counts %d fetches of %s for %d viewers, want exactly 1", fetches, name, viewers)
	}
}
