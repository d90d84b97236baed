package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/hlsedge/hlsedge/internal/testkit"
	"github.com/hlsedge/hlsedge/proxy/certs/certtest"
)

// manualClock is the injected clock: it moves only when the test says.
type manualClock struct{ ns atomic.Int64 }

func newClock() *manualClock {
	c := &manualClock{}
	c.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *manualClock) Now() time.Time                { return time.Unix(0, c.ns.Load()) }
func (c *manualClock) Advance(d time.Duration)       { c.ns.Add(int64(d)) }
func (c *manualClock) opts(log *slog.Logger) Options { return Options{Log: log, Now: c.Now} }

// syncBuffer collects log lines from handshake goroutines.
type syncBuffer = testkit.SyncBuffer

// serveTLS accepts TLS connections for m on loopback and completes each handshake; it returns the address.
func serveTLS(t *testing.T, m *Manager) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := tls.NewListener(ln, m.TLSConfig())
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				// Wait for the client to hang up, so a TLS 1.3 client never races our close.
				_ = c.(*tls.Conn).Handshake()
				var b [1]byte
				c.Read(b[:])
			}()
		}
	}()
	return ln.Addr().String()
}

// served is the leaf a verifying client receives for serverName ("" sends no SNI, as for an IP address).
func served(t *testing.T, addr, serverName string, roots *x509.CertPool, tweak func(*tls.Config)) *x509.Certificate {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots, ServerName: serverName}
	if serverName == "" {
		// Go sends no SNI for an IP address; the certificate is then checked against the IP.
		cfg.ServerName = "127.0.0.1"
	}
	if tweak != nil {
		tweak(cfg)
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("handshake for %q: %v", serverName, err)
	}
	defer c.Close()
	st := c.ConnectionState()
	if st.NegotiatedProtocol != "" && st.NegotiatedProtocol != "http/1.1" {
		t.Fatalf("ALPN %q", st.NegotiatedProtocol)
	}
	return st.PeerCertificates[0]
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "test CA")
	good := ca.Issue(t, "edge.example.com", "127.0.0.1")
	other := ca.Issue(t, "other.example.com")
	crt, key := good.Write(t, dir, "good")
	_, otherKey := other.Write(t, dir, "other")
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		certtest.WriteFile(t, p, data)
		return p
	}
	half := write("half.crt", good.CertPEM[:len(good.CertPEM)/2])
	// A whole leaf followed by an intermediate cut short: X509KeyPair alone would take it.
	cutChain := write("cut.crt", append(append([]byte{}, good.CertPEM...), ca.PEM[:len(ca.PEM)-40]...))
	halfKey := write("half.key", good.KeyPEM[:len(good.KeyPEM)-30])
	keyAsCert := write("keyascert.crt", good.KeyPEM)
	empty := write("empty.crt", nil)

	f := func(c Config, want string) {
		t.Helper()
		c.SetDefaults()
		err := c.Validate()
		if want == "" {
			if err != nil {
				t.Fatalf("%+v: %v", c, err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%+v: got %v, want an error with %q", c, err, want)
		}
		if strings.Contains(err.Error(), string(good.KeyPEM[100:140])) {
			t.Fatalf("the error quotes the key: %v", err)
		}
	}
	f(Config{CertFile: crt, KeyFile: key}, "")
	f(Config{Certificates: []Pair{{crt, key}}}, "")
	f(Config{CertFile: crt, KeyFile: key, MinVersion: "1.3"}, "")
	f(Config{}, "'tls.cert_file' and 'tls.key_file'")
	f(Config{CertFile: crt}, "'tls.key_file' must be set")
	f(Config{KeyFile: key}, "'tls.cert_file' must be set")
	f(Config{CertFile: crt, KeyFile: key, Certificates: []Pair{{CertFile: crt}}}, "'tls.certificates[0].key_file' must be set")
	f(Config{CertFile: filepath.Join(dir, "missing.crt"), KeyFile: key}, "'tls.cert_file' must be readable")
	f(Config{CertFile: crt, KeyFile: filepath.Join(dir, "missing.key")}, "'tls.key_file' must be readable")
	f(Config{CertFile: crt, KeyFile: otherKey}, "'tls.key_file' does not fit 'tls.cert_file'")
	f(Config{CertFile: crt, KeyFile: key, Certificates: []Pair{{half, key}}}, "'tls.certificates[0].cert_file' is not a whole PEM chain")
	f(Config{CertFile: cutChain, KeyFile: key}, "'tls.cert_file' is not a whole PEM chain")
	f(Config{CertFile: crt, KeyFile: halfKey}, "'tls.key_file' must hold one whole PEM private key")
	f(Config{CertFile: keyAsCert, KeyFile: key}, "'tls.cert_file' is not a whole PEM chain")
	f(Config{CertFile: empty, KeyFile: key}, "'tls.cert_file' holds no PEM certificate")
	f(Config{CertFile: crt, KeyFile: key, MinVersion: "1.1"}, "'tls.min_version'")
	f(Config{CertFile: crt, KeyFile: key, CheckInterval: -time.Second}, "'tls.check_interval'")
}

// A renewed certificate is served on the next connection after the check interval, and at once after Reload;
// before either, the loaded one stays.
func TestSwappedCertificateServedOnNextConnection(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "test CA")
	first := ca.Issue(t, "edge.example.com")
	crt, key := first.Write(t, dir, "edge")
	clock := newClock()
	ms := metrics.NewSet()
	opts := clock.opts(slog.New(slog.NewTextHandler(&syncBuffer{}, nil)))
	opts.Metrics = ms
	m, err := New(Config{CertFile: crt, KeyFile: key, CheckInterval: time.Second}, opts)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m)
	roots := ca.Pool()
	if got := served(t, addr, "edge.example.com", roots, nil); !got.Equal(first.Cert) {
		t.Fatalf("served %v, want the first certificate", got.SerialNumber)
	}

	second := ca.Issue(t, "edge.example.com")
	second.Write(t, dir, "edge")
	clock.Advance(time.Second - 1)
	if got := served(t, addr, "edge.example.com", roots, nil); !got.Equal(first.Cert) {
		t.Fatal("the files were looked at before the check interval passed")
	}
	clock.Advance(1)
	if got := served(t, addr, "edge.example.com", roots, nil); !got.Equal(second.Cert) {
		t.Fatalf("after the interval: served %v, want the renewed %v", got.SerialNumber, second.Cert.SerialNumber)
	}
	if st := m.Stats(); st != (Stats{Reloads: 1}) {
		t.Fatalf("stats %+v, want one reload", st)
	}
	// Unchanged files are not read again however many intervals pass.
	clock.Advance(10 * time.Second)
	served(t, addr, "edge.example.com", roots, nil)
	if st := m.Stats(); st != (Stats{Reloads: 1}) {
		t.Fatalf("stats %+v: unchanged files were loaded again", st)
	}

	// Reload (SIGHUP, admin API) does not wait for the interval.
	third := ca.Issue(t, "edge.example.com")
	third.Write(t, dir, "edge")
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := served(t, addr, "edge.example.com", roots, nil); !got.Equal(third.Cert) {
		t.Fatalf("after Reload: served %v, want %v", got.SerialNumber, third.Cert.SerialNumber)
	}

	var prom bytes.Buffer
	ms.WritePrometheus(&prom)
	for _, want := range []string{
		`hlsedge_tls_reloads_total{result="ok"} 2`,
		`hlsedge_tls_reloads_total{result="error"} 0`,
		"hlsedge_tls_certificate_expiry_timestamp_seconds ",
	} {
		if !strings.Contains(prom.String(), want) {
			t.Fatalf("metrics lack %q:\n%s", want, prom.String())
		}
	}
}

// A renewal caught half-written (a truncated chain, a new certificate before its key) keeps the last good pair
// in service; once the files are whole again the new pair is served. The key never reaches the log.
func TestHalfWrittenRenewalKeepsOldPair(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "test CA")
	old := ca.Issue(t, "edge.example.com")
	crt, key := old.Write(t, dir, "edge")
	clock := newClock()
	logs := &syncBuffer{}
	m, err := New(Config{CertFile: crt, KeyFile: key}, clock.opts(slog.New(slog.NewJSONHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m)
	roots := ca.Pool()
	renewed := ca.Issue(t, "edge.example.com")

	step := func(name string, write func(), want *x509.Certificate, wantStats Stats) {
		t.Helper()
		write()
		clock.Advance(time.Second)
		if got := served(t, addr, "edge.example.com", roots, nil); !got.Equal(want) {
			t.Fatalf("%s: served serial %v, want %v", name, got.SerialNumber, want.SerialNumber)
		}
		if st := m.Stats(); st != wantStats {
			t.Fatalf("%s: stats %+v, want %+v", name, st, wantStats)
		}
	}
	// Written in place, as a naive renewal script does, and caught halfway.
	step("truncated chain", func() {
		os.WriteFile(crt, renewed.CertPEM[:len(renewed.CertPEM)/2], 0o600)
	}, old.Cert, Stats{Failures: 1})
	// The new certificate is whole, but the old key is still beside it.
	step("certificate before its key", func() {
		os.WriteFile(crt, renewed.CertPEM, 0o600)
	}, old.Cert, Stats{Failures: 2})
	// The same half-written state is not retried (and logged) at every interval.
	step("nothing changed", func() {}, old.Cert, Stats{Failures: 2})
	step("key written", func() {
		certtest.WriteFile(t, key, renewed.KeyPEM)
	}, renewed.Cert, Stats{Reloads: 1, Failures: 2})

	// An explicit Reload of a broken pair reports the field and keeps serving too.
	os.WriteFile(key, []byte("-----BEGIN PRIVATE KEY-----\nAAAA"), 0o600)
	if err := m.Reload(); err == nil || !strings.Contains(err.Error(), "'tls.key_file'") {
		t.Fatalf("Reload of a cut key: %v", err)
	}
	if got := served(t, addr, "edge.example.com", roots, nil); !got.Equal(renewed.Cert) {
		t.Fatal("a failed Reload replaced the served certificate")
	}
	// A file removed for a moment (a rename dance) is the same: old pair kept until it is back.
	os.Remove(crt)
	if err := m.Reload(); err == nil || !strings.Contains(err.Error(), "'tls.cert_file' must be readable") {
		t.Fatalf("Reload of a missing file: %v", err)
	}

	out := logs.String()
	if n := strings.Count(out, "keeping the previous certificate"); n != 4 {
		t.Fatalf("want 4 failures logged, got %d:\n%s", n, out)
	}
	for _, k := range [][]byte{old.KeyPEM, renewed.KeyPEM} {
		body := string(k[100:140])
		if strings.Contains(out, body) {
			t.Fatalf("a private key reached the log:\n%s", out)
		}
	}
}

func TestSNIPicksCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "test CA")
	def := ca.Issue(t, "edge.example.com", "127.0.0.1")
	exact := ca.Issue(t, "tv.example.net", "live.example.net")
	wild := ca.Issue(t, "*.example.org")
	// One name with an RSA and an ECDSA certificate: each client gets the one it can use.
	both := ca.Issue(t, "dual.example.com")
	bothRSA := ca.IssueRSA(t, "dual.example.com")
	pair := func(l *certtest.Leaf, base string) Pair {
		c, k := l.Write(t, dir, base)
		return Pair{c, k}
	}
	d := pair(def, "def")
	m, err := New(Config{CertFile: d.CertFile, KeyFile: d.KeyFile, Certificates: []Pair{
		pair(exact, "exact"), pair(wild, "wild"), pair(both, "ecdsa"), pair(bothRSA, "rsa"),
	}}, newClock().opts(slog.New(slog.NewTextHandler(&syncBuffer{}, nil))))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m)
	roots := ca.Pool()

	f := func(name string, want *certtest.Leaf) {
		t.Helper()
		// The client verifies the chain against the name it asked for, so a wrong pick fails the handshake;
		// the serial tells which of the matching certificates came.
		if got := served(t, addr, name, roots, nil); !got.Equal(want.Cert) {
			t.Fatalf("%q: served %v", name, got.DNSNames)
		}
	}
	f("", def) // an IP-address client sends no SNI
	f("edge.example.com", def)
	f("tv.example.net", exact)
	f("live.example.net", exact)
	f("a.example.org", wild)
	f("dual.example.com", both)

	// Names no certificate covers get the default; the client then rejects it, as it should.
	g := func(name string, want *certtest.Leaf) {
		t.Helper()
		hello := &tls.ClientHelloInfo{ServerName: name}
		if got := m.cur.Load().pick(hello); !got.Leaf.Equal(want.Cert) {
			t.Fatalf("pick(%q) = %v, want %v", name, got.Leaf.DNSNames, want.Cert.DNSNames)
		}
	}
	g("unknown.example.com", def)
	g("a.b.example.org", def) // a wildcard covers one label only
	g("example.org", def)
	g("TV.Example.NET.", exact)
	g("A.EXAMPLE.ORG", wild)

	// A TLS 1.2 client with RSA suites only cannot use the ECDSA certificate of the same name.
	rsaOnly := func(c *tls.Config) {
		c.MaxVersion = tls.VersionTLS12
		c.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	}
	if got := served(t, addr, "dual.example.com", roots, rsaOnly); !got.Equal(bothRSA.Cert) {
		t.Fatalf("an RSA-only client got %v", got.PublicKeyAlgorithm)
	}
}

// Defaults: TLS 1.2 at least, forward-secret AEAD suites, HTTP/1.1 by ALPN.
func TestTLSConfigDefaults(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "test CA")
	crt, key := ca.Issue(t, "127.0.0.1").Write(t, dir, "edge")
	m, err := New(Config{CertFile: crt, KeyFile: key}, Options{Log: slog.New(slog.NewTextHandler(&syncBuffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m)
	dial := func(c *tls.Config) (tls.ConnectionState, error) {
		c.RootCAs = ca.Pool()
		c.ServerName = "127.0.0.1"
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, c)
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer conn.Close()
		return conn.ConnectionState(), nil
	}
	st, err := dial(&tls.Config{NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if st.NegotiatedProtocol != "http/1.1" || st.Version != tls.VersionTLS13 {
		t.Fatalf("ALPN %q, version %x", st.NegotiatedProtocol, st.Version)
	}
	if _, err := dial(&tls.Config{MaxVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("a TLS 1.1 client was accepted")
	}
	if _, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}); err == nil {
		t.Fatal("a CBC suite was accepted")
	}
	st, err = dial(&tls.Config{MaxVersion: tls.VersionTLS12})
	if err != nil || st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 && st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 {
		t.Fatalf("TLS 1.2: suite %s, %v", tls.CipherSuiteName(st.CipherSuite), err)
	}
}

// Handshakes while the files change and Reload runs: every one completes with one of the two valid pairs.
func TestConcurrentHandshakesDuringReloads(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "test CA")
	a, b := ca.Issue(t, "edge.example.com"), ca.Issue(t, "edge.example.com")
	crt, key := a.Write(t, dir, "edge")
	clock := newClock()
	m, err := New(Config{CertFile: crt, KeyFile: key}, clock.opts(slog.New(slog.NewTextHandler(&syncBuffer{}, nil))))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m)
	roots := ca.Pool()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				clock.Advance(time.Second)
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr,
					&tls.Config{RootCAs: roots, ServerName: "edge.example.com"})
				if err != nil {
					errs <- err
					return
				}
				if leaf := c.ConnectionState().PeerCertificates[0]; !leaf.Equal(a.Cert) && !leaf.Equal(b.Cert) {
					errs <- errors.New("served a certificate that was never configured")
				}
				c.Close()
			}
		}()
	}
	for i := range 10 {
		l := a
		if i%2 == 0 {
			l = b
		}
		l.Write(t, dir, "edge")
		m.Reload()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
