// Package certs serves TLS certificates to the public listener, chosen by SNI and picked up again from disk when
// they are renewed, without a restart.
package certs

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Manager holds the loaded certificates and reloads them when their files change. Handshakes never wait for a
// reload: at most one of them looks at the files per CheckInterval, and the others go on with what is loaded.
type Manager struct {
	pairs    []namedPair
	interval time.Duration
	log      *slog.Logger
	now      func() time.Time
	conf     *tls.Config

	cur atomic.Pointer[certSet]
	// next is when a handshake looks at the files again, in Unix nanoseconds.
	next atomic.Int64

	// mu serializes looking at and loading the files. seen holds, per pair, the files' state at the last
	// attempt to load them, so a pair that failed is tried again only once its files change again.
	mu   sync.Mutex
	seen []fileState

	reloadsOK, reloadsFailed, handshakeErrors atomic.Uint64
	mOK, mFailed, mHandshake                  *metrics.Counter
}

// Options carries the Manager's dependencies; nil ones get defaults.
type Options struct {
	Log *slog.Logger
	// Metrics receives hlsedge_tls_reloads_total{result}, hlsedge_tls_handshake_errors_total and
	// hlsedge_tls_certificate_expiry_timestamp_seconds.
	Metrics *metrics.Set
	// Now is the clock that paces the file checks; tests move it.
	Now func() time.Time
}

// Stats counts pair loads after the first, successful or not, and failed handshakes on Listener's connections.
type Stats struct {
	Reloads, Failures uint64
	HandshakeErrors   uint64
}

// New loads every pair of a config (SetDefaults is applied to a copy) and fails if any cannot be loaded.
func New(cfg Config, opts Options) (*Manager, error) {
	cfg.SetDefaults()
	minVersion, err := cfg.minVersion()
	if err != nil {
		return nil, err
	}
	if cfg.CheckInterval < 0 {
		return nil, errors.New("'tls.check_interval' must not be negative")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Manager{
		pairs:    cfg.pairs(),
		interval: cfg.CheckInterval,
		log:      opts.Log,
		now:      opts.Now,
	}
	if len(m.pairs) == 0 {
		return nil, errors.New("'tls.cert_file' and 'tls.key_file' (or 'tls.certificates') must be set when 'tls' is present")
	}
	m.seen = make([]fileState, len(m.pairs))
	certs := make([]*tls.Certificate, len(m.pairs))
	for i, p := range m.pairs {
		m.seen[i] = p.state()
		if certs[i], err = p.load(); err != nil {
			return nil, err
		}
		m.logLoaded(p, certs[i], "tls: certificate loaded")
	}
	m.cur.Store(newCertSet(certs))
	m.next.Store(m.now().Add(m.interval).UnixNano())
	if ms := opts.Metrics; ms != nil {
		m.mOK = ms.NewCounter(`hlsedge_tls_reloads_total{result="ok"}`)
		m.mFailed = ms.NewCounter(`hlsedge_tls_reloads_total{result="error"}`)
		m.mHandshake = ms.NewCounter(`hlsedge_tls_handshake_errors_total`)
		ms.NewGauge(`hlsedge_tls_certificate_expiry_timestamp_seconds`, func() float64 {
			return float64(m.cur.Load().notAfter.Unix())
		})
	}
	m.conf = &tls.Config{
		MinVersion: minVersion,
		// The TLS 1.2 suites: forward-secret AEADs only (Mozilla's "intermediate" set). Go picks AES-GCM or
		// ChaCha20 by the hardware of both ends; TLS 1.3 suites are not configurable and all fine.
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		GetCertificate: m.GetCertificate,
		// HTTP/1.1 only: fasthttp does not speak h2, and a client told so falls back at once.
		NextProtos: []string{"http/1.1"},
		// Session tickets stay on (Go rotates their keys itself): a returning player skips the full handshake.
	}
	return m, nil
}

// TLSConfig is the configuration Listener uses, for a server that makes its own TLS connections (tls.NewListener
// works, without Listener's gathered writes). It is shared: do not modify it.
func (m *Manager) TLSConfig() *tls.Config { return m.conf }

// GetCertificate is the tls.Config hook: it picks the certificate for the client's SNI and, once per
// CheckInterval, first reloads the pairs whose files changed.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	// Fast path: not yet time to look at the files, or another handshake is looking at them right now.
	if now := m.now().UnixNano(); now >= m.next.Load() && m.mu.TryLock() {
		// Slow path: a stat of each file, and a load of the pairs that changed.
		if now >= m.next.Load() {
			m.next.Store(now + int64(m.interval))
			m.reloadLocked(false)
		}
		m.mu.Unlock()
	}
	return m.cur.Load().pick(hello), nil
}

// Reload reads every pair again now, changed or not (for SIGHUP or an admin call). A pair that fails keeps its
// previous certificate; the error names each failed pair's field.
func (m *Manager) Reload() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reloadLocked(true)
}

// Stats returns the reload counters.
func (m *Manager) Stats() Stats {
	return Stats{Reloads: m.reloadsOK.Load(), Failures: m.reloadsFailed.Load(), HandshakeErrors: m.handshakeErrors.Load()}
}

// reloadLocked loads the pairs whose files changed since the last attempt (all of them when force is set) and
// swaps in a new set if any loaded. A pair that fails to load, such as a renewal caught half-written or a new
// certificate whose key has not been written yet, keeps its last good certificate: clients go on being served,
// and the next change of its files is tried again.
func (m *Manager) reloadLocked(force bool) error {
	old := m.cur.Load()
	var certs []*tls.Certificate
	var errs []error
	for i, p := range m.pairs {
		st := p.state()
		if !force && st.same(m.seen[i]) {
			continue
		}
		m.seen[i] = st
		c, err := p.load()
		if err != nil {
			m.reloadsFailed.Add(1)
			if m.mFailed != nil {
				m.mFailed.Inc()
			}
			m.log.Error("tls: keeping the previous certificate", "field", p.field, "error", err)
			errs = append(errs, err)
			continue
		}
		m.reloadsOK.Add(1)
		if m.mOK != nil {
			m.mOK.Inc()
		}
		if certs == nil {
			certs = append([]*tls.Certificate(nil), old.certs...)
		}
		certs[i] = c
		m.logLoaded(p, c, "tls: certificate reloaded")
	}
	if certs != nil {
		m.cur.Store(newCertSet(certs))
	}
	return errors.Join(errs...)
}

// logLoaded names what was loaded: the files, the leaf's names and expiry. Nothing of the key.
func (m *Manager) logLoaded(p namedPair, c *tls.Certificate, msg string) {
	m.log.Info(msg, "field", p.field, "cert_file", p.CertFile, "names", c.Leaf.DNSNames,
		"not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	if left := c.Leaf.NotAfter.Sub(m.now()); left < 14*24*time.Hour {
		m.log.Warn("tls: certificate expires soon", "field", p.field, "cert_file", p.CertFile, "left", left.Round(time.Minute).String())
	}
}

// fileState is what a check compares: identity, size and modification time of both files. A renewal that
// replaces a file by rename (certbot's symlinks, atomic writers) changes the identity even if the size and time
// were kept; a failed stat is a state of its own, so a file that disappears and comes back is looked at again.
type fileState struct {
	cert, key os.FileInfo
}

func (p namedPair) state() fileState {
	var s fileState
	s.cert, _ = os.Stat(p.CertFile)
	s.key, _ = os.Stat(p.KeyFile)
	return s
}

func (s fileState) same(o fileState) bool {
	return sameFile(s.cert, o.cert) && sameFile(s.key, o.key)
}

func sameFile(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}
