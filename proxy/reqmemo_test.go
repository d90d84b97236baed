package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// pipeClient asks one in-memory connection of an edge's public server its requests in turn. The server side is
// a timedConn, as the public listener hands it over, so the test can look at the connection's memos between two
// requests: the handler has finished with them once the response is read.
type pipeClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
	tc *timedConn
}

func servePipe(t *testing.T, s *fasthttp.Server) *pipeClient {
	t.Helper()
	server, client := net.Pipe()
	tc := &timedConn{Conn: server, l: &connListener{}, peer: netip.AddrFrom4([4]byte{127, 0, 0, 1})}
	done := make(chan error, 1)
	go func() { done <- s.ServeConn(tc) }()
	t.Cleanup(func() { client.Close(); <-done })
	return &pipeClient{t: t, c: client, br: bufio.NewReader(client), tc: tc}
}

func (p *pipeClient) get(uri string) (int, string) {
	p.t.Helper()
	p.c.SetDeadline(time.Now().Add(30 * time.Second)) // a hung server fails the test instead of hanging it
	if _, err := io.WriteString(p.c, "GET "+uri+" HTTP/1.1\r\nHost: edge\r\n\r\n"); err != nil {
		p.t.Fatal(err)
	}
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// channelOrigin answers every playlist with one segment named after the playlist's path and query, so a test can
// tell which origin request a playlist came from.
func channelOrigin(t *testing.T) *testOrigin {
	return startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".m3u8") {
			name := strings.NewReplacer("/", "_", "?", "_", "=", "_", "&", "_").Replace(r.URL.RequestURI())
			w.Write([]byte("#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:3.000,\n" + name + ".ts\n"))
			return
		}
		w.Write([]byte("segment"))
	})
}

// A repeated playlist line is answered from the connection's memo, not parsed again: the test alters the memo's
// origin path, and the next identical line follows it. Any other line is parsed, and a segment between two
// reloads leaves the memo to the playlist.
func TestRequestMemoAnswersTheRepeatedPlaylistLine(t *testing.T) {
	o := channelOrigin(t)
	_, srv := startEdge(t, withAuth, o.url)
	p := servePipe(t, srv.public)
	tok := mintJWT(t, time.Hour, "a001", "a002")
	line := "/play/a001/index.m3u8?token=" + tok

	if code, body := p.get(line); code != 200 || !strings.Contains(body, "_play_a001_index.m3u8.ts?token=") {
		t.Fatalf("first request: %d %q", code, body)
	}
	if m := &p.tc.req; m.s == nil || string(m.uri) != line || string(m.originPath) != "/play/a001/index.m3u8" ||
		m.tok.name != "token" || !m.onlyTokens {
		t.Fatalf("the playlist line is not remembered: %+v", m)
	}
	p.tc.req.originPath = []byte("/play/a002/index.m3u8")
	if code, body := p.get(line); code != 200 || !strings.Contains(body, "_play_a002_index.m3u8.ts") {
		t.Fatalf("the repeated line was parsed again instead of answered from the memo: %d %q", code, body)
	}
	p.tc.req.originPath = []byte("/play/a001/index.m3u8")

	if code, _ := p.get("/play/a001/seg7.ts?token=" + tok); code != 200 {
		t.Fatalf("segment: %d", code)
	}
	if string(p.tc.req.uri) != line {
		t.Fatalf("a segment replaced the playlist in the memo: %q", p.tc.req.uri)
	}

	// Another token on the same path is another line: it is decided on its own.
	bad := []byte(tok)
	bad[len(bad)-2] ^= 1
	if code, _ := p.get("/play/a001/index.m3u8?token=" + string(bad)); code != 401 && code != 403 {
		t.Fatalf("a forged token on the remembered path: %d", code)
	}
	if code, body := p.get(line); code != 200 || !strings.Contains(body, "_play_a001_index.m3u8.ts?token=") {
		t.Fatalf("the first line again: %d %q", code, body)
	}
	// A line with an argument for the origin keeps it, remembered or not.
	withArg := "/play/a001/index.m3u8?x=1&token=" + tok
	for range 2 {
		if code, body := p.get(withArg); code != 200 || !strings.Contains(body, "_play_a001_index.m3u8_x_1.ts?token=") {
			t.Fatalf("origin argument: %d %q", code, body)
		}
	}
	if m := &p.tc.req; string(m.uri) != withArg || m.onlyTokens {
		t.Fatalf("the line with an origin argument: %+v", m)
	}

	// A line longer than maxMemoURI is parsed every time and keeps nothing.
	long := line + "&pad=" + strings.Repeat("p", maxMemoURI)
	if code, _ := p.get(long); code != 200 {
		t.Fatalf("long line: %d", code)
	}
	if p.tc.req.s != nil {
		t.Fatalf("a line over maxMemoURI is remembered")
	}
}

// A reload parses the connection's remembered line again under the new config: the route the line had is gone,
// and the same line on the same connection now finds none.
func TestRequestMemoFollowsAReload(t *testing.T) {
	o := channelOrigin(t)
	cfg := func(routes ...RouteConfig) *Config {
		c := &Config{Origins: []OriginConfig{{URL: o.url}}, Routes: routes}
		c.Auth.Disabled = true
		return c
	}
	r := newReloadable(t, cfg(RouteConfig{Prefix: "/play/"}), Options{})
	p := servePipe(t, r.srv.public)
	line := "/play/a001/index.m3u8"
	for range 2 {
		if code, body := p.get(line); code != 200 || !strings.Contains(body, "_play_a001_index.m3u8.ts") {
			t.Fatalf("before the reload: %d %q", code, body)
		}
	}
	if string(p.tc.req.uri) != line {
		t.Fatalf("not remembered: %q", p.tc.req.uri)
	}
	r.reload(cfg(RouteConfig{Prefix: "/live/", OriginPrefix: "/play/"}))
	if code, body := p.get(line); code != 404 {
		t.Fatalf("the remembered line after its route was removed: %d %q", code, body)
	}
	if code, body := p.get("/live/a001/index.m3u8"); code != 200 || !strings.Contains(body, "_play_a001_index.m3u8.ts") {
		t.Fatalf("the new route: %d %q", code, body)
	}
}
