package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/hlsedge/hlsedge/proxy/certs"
	"github.com/hlsedge/hlsedge/proxy/certs/certtest"
)

// tlsEdge is a player edge on https with a certificate from a CA the test makes.
type tlsEdge struct {
	*playerEdge
	base     string // https://127.0.0.1:PORT
	ca       *certtest.CA
	leaf     *certtest.Leaf
	dir      string
	certFile string
	keyFile  string
}

// startTLSEdge starts a player edge whose public listener serves TLS with a fresh CA's certificate for 127.0.0.1
// and localhost; mutate adjusts the rest of the config as in startPlayerEdge.
func startTLSEdge(t *testing.T, mutate func(*Config), origins ...string) *tlsEdge {
	t.Helper()
	te := &tlsEdge{ca: certtest.NewCA(t, "hlsedge test CA"), dir: t.TempDir()}
	te.leaf = te.ca.Issue(t, "127.0.0.1", "localhost")
	te.certFile, te.keyFile = te.leaf.Write(t, te.dir, "edge")
	te.playerEdge = startPlayerEdge(t, PlayerConfig{}, func(c *Config) {
		if mutate != nil {
			mutate(c)
		}
		c.TLS = &certs.Config{CertFile: te.certFile, KeyFile: te.keyFile}
	}, origins...)
	te.base = "https://" + strings.TrimPrefix(te.playerEdge.base, "http://")
	return te
}

// tlsClient trusts only roots, and opens a new connection per request unless keepAlive.
func tlsClient(roots *x509.CertPool, keepAlive bool) *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		DisableKeepAlives: !keepAlive,
	}}
}

// A renewed certificate on disk is served to the next connection after a reload, while a viewer's connection
// opened before it keeps working; a plain-http client on the https port is refused without harm.
func TestTLSCertificateSwapOnEdge(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(testPlaylist)) })
	e := startTLSEdge(t, nil, o.url)
	roots := e.ca.Pool()

	fresh := tlsClient(roots, false)
	viewer := tlsClient(roots, true)
	leafOf := func(c *http.Client) *x509.Certificate {
		t.Helper()
		resp, err := c.Get(e.base + "/a001/index.m3u8")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.TLS == nil {
			t.Fatalf("playlist over https: %d, tls %v", resp.StatusCode, resp.TLS != nil)
		}
		return resp.TLS.PeerCertificates[0]
	}
	if got := leafOf(viewer); !got.Equal(e.leaf.Cert) {
		t.Fatal("the viewer did not get the configured certificate")
	}

	renewed := e.ca.Issue(t, "127.0.0.1", "localhost")
	renewed.Write(t, e.dir, "edge")
	if err := e.srv.certs.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := leafOf(fresh); !got.Equal(renewed.Cert) {
		t.Fatalf("a new connection after the renewal got serial %v, want %v", got.SerialNumber, renewed.Cert.SerialNumber)
	}
	// The viewer's connection was not dropped: the next request reuses it, still with the certificate it was
	// opened with.
	if got := leafOf(viewer); !got.Equal(e.leaf.Cert) {
		t.Fatal("the viewer's keep-alive connection was replaced by the reload")
	}

	// A renewal caught half-written changes nothing that clients see.
	os.WriteFile(e.certFile, renewed.CertPEM[:len(renewed.CertPEM)-100], 0o600)
	if err := e.srv.certs.Reload(); err == nil {
		t.Fatal("a truncated certificate loaded")
	}
	if got := leafOf(fresh); !got.Equal(renewed.Cert) {
		t.Fatal("a truncated renewal replaced the served certificate")
	}

	// Plain http on the https port: the connection is closed, counted, and not logged as a warning.
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(e.base, "https://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /a001/index.m3u8 HTTP/1.1\r\nHost: edge\r\n\r\n")
	b, err := io.ReadAll(c)
	if err != nil || len(b) != 0 {
		t.Fatalf("plain http on the TLS port: %q, %v; want the connection closed", b, err)
	}
	if n := e.srv.certs.Stats().HandshakeErrors; n != 1 {
		t.Fatalf("handshake errors %d, want 1", n)
	}
	if got := leafOf(fresh); !got.Equal(renewed.Cert) {
		t.Fatal("the edge stopped serving TLS after a plain-http client")
	}
}

// ffprobe plays the stream through https, verifying the certificate against the test's CA, and refuses it
// against another CA: the trust is real, not switched off.
func TestTLSFFprobePlays(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatal("ffprobe is missing: run `make test` (it installs Debian's ffmpeg)")
	}
	origin := startBenchOrigin(t, "a001")
	e := startTLSEdge(t, withSecureToken, origin)
	caFile := filepath.Join(e.dir, "ca.pem")
	if err := os.WriteFile(caFile, e.ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(e.dir, "other-ca.pem")
	if err := os.WriteFile(otherCA, certtest.NewCA(t, "another CA").PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	probe := func(ca, url string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rw_timeout", "10000000",
			"-tls_verify", "1", "-ca_file", ca,
			"-show_entries", "stream=codec_type,codec_name", "-of", "compact", url)
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	url := e.base + "/a001/index.m3u8?token=" + secureToken("a001", "127.0.0.1", time.Hour)
	out, err := probe(caFile, url)
	if err != nil {
		t.Fatalf("ffprobe over https: %v\n%s", err, out)
	}
	if !strings.Contains(out, "codec_name=h264|codec_type=video") || !strings.Contains(out, "codec_name=aac|codec_type=audio") {
		t.Fatalf("ffprobe over https did not see H.264 video and AAC audio:\n%s", out)
	}
	out, err = probe(otherCA, url)
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || !strings.Contains(out, "failed verification") {
		t.Fatalf("ffprobe trusting another CA: err %v, want a certificate failure:\n%s", err, out)
	}
}

// Chromium plays the embed page over https. It trusts the edge's key through --ignore-certificate-errors-spki-list
// (honoured with the user data dir the runner sets), which accepts exactly that key: a second edge with another
// certificate is refused, so the browser checks certificates as usual.
func TestTLSEmbedPlaysInHeadlessChromium(t *testing.T) {
	origin := startBenchOrigin(t, "a001")
	patient := func(c *Config) { withSecureToken(c); c.Server.ReadTimeout = 2 * time.Second }
	e := startTLSEdge(t, patient, origin)
	untrusted := startTLSEdge(t, patient, origin)

	good := secureToken("a001", "127.0.0.1", time.Hour)
	art := artifactDir(t)
	cases := []browserCase{
		{Name: "https-play", URL: e.base + "/a001/embed.html?token=" + good, Wait: "play", MinTime: 4, TimeoutMS: 40000,
			Screenshot: filepath.Join(art, "embed-https-play.png")},
		{Name: "https-play-hlsjs", URL: e.base + "/a001/embed.html?engine=hlsjs&token=" + good, Wait: "play", MinTime: 4, TimeoutMS: 40000},
		{Name: "https-untrusted", URL: untrusted.base + "/a001/embed.html?token=" + good, Wait: "play", TimeoutMS: 10000},
	}
	res := runBrowser(t, cases, "--ignore-certificate-errors-spki-list="+e.leaf.SPKIHash())
	// Both engines: the browser's own HLS where it has one, and hls.js, whose fetches are the page's own.
	for _, name := range []string{"https-play", "https-play-hlsjs"} {
		if r := res[name]; !r.Waited || r.CurrentTime-r.StartTime <= 4 || r.State != "playing" || r.VideoWidth == 0 {
			t.Errorf("%s: video did not advance 4 s: from %.2f to %.2f, state %q, engine %q, width %d, message %q %q, error %q, failed requests %q, console %q",
				name, r.StartTime, r.CurrentTime, r.State, r.Engine, r.VideoWidth, r.Message, r.Detail, r.Error, r.FailedRequests, r.ConsoleErrors)
		}
	}
	if r := res["https-play-hlsjs"]; r.Engine != "hlsjs" {
		t.Errorf("engine=hlsjs played with %q", r.Engine)
	}
	if r := res["https-untrusted"]; r.Waited || !strings.Contains(r.Error, "ERR_CERT") {
		t.Errorf("an edge with a certificate the browser does not trust: waited %v, error %q; want a certificate error", r.Waited, r.Error)
	}
}

// The tls section as an operator writes it: parsed strictly, validated with the field named, and the example in
// configs/edge.yaml uncommented is a known shape.
func TestTLSConfigParses(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "hlsedge test CA")
	crt, key := ca.Issue(t, "edge.example.com").Write(t, dir, "edge")
	tvCrt, tvKey := ca.Issue(t, "tv.example.net").Write(t, dir, "tv")
	f := func(tlsYAML, want string) {
		t.Helper()
		c, err := ParseConfig([]byte("origins: [{url: \"http://127.0.0.1:9\"}]\nauth: {disabled: true}\n" + tlsYAML))
		if err == nil {
			c.SetDefaults()
			err = c.Validate()
		}
		if want == "" {
			if err != nil {
				t.Fatalf("%s: %v", tlsYAML, err)
			}
			if c.TLS == nil || c.TLS.CheckInterval != time.Second || c.TLS.MinVersion != "1.2" {
				t.Fatalf("%s: defaults not applied: %+v", tlsYAML, c.TLS)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: got %v, want an error with %q", tlsYAML, err, want)
		}
	}
	f("tls: {cert_file: "+crt+", key_file: "+key+"}", "")
	f("tls:\n  cert_file: "+crt+"\n  key_file: "+key+"\n  certificates:\n    - {cert_file: "+tvCrt+", key_file: "+tvKey+"}\n", "")
	f("tls: {certificates: [{cert_file: "+tvCrt+", key_file: "+tvKey+"}]}", "")
	f("tls: {cert_file: "+crt+", key_file: "+tvKey+"}", "'tls.key_file' does not fit 'tls.cert_file'")
	f("tls: {cert_file: "+crt+", key_file: "+key+", certificates: [{cert_file: "+tvCrt+"}]}", "'tls.certificates[0].key_file' must be set")
	f("tls: {cert_file: "+crt+", key_file: "+key+", cert: x}", "field cert not found")
	f("tls: {}", "'tls.cert_file' and 'tls.key_file'")
}

// The conference WebSocket works over wss: the upgraded connection is the TLS one, hijacked from the HTTP server.
func TestTLSSignalingOverWSS(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(testPlaylist)) })
	e := startTLSEdge(t, withConferences, o.url)
	wsURL := "wss" + strings.TrimPrefix(e.base, "https") + "/ws?room=standup"
	dial := func(email string, moderator bool) *websocket.Conn {
		t.Helper()
		c, _, err := dialConference(t, wsURL, email, moderator, "https://conf.example.com", &tls.Config{RootCAs: e.ca.Pool()})
		if err != nil {
			t.Fatalf("wss dial for %s: %v", email, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	mod := dial("mod@example.com", true)
	guest := dial("guest@example.com", false)
	awaitWaitingGuest(t, mod, guest)
}
