// Package fleettest runs a real redis-server for tests on a free loopback port, and a proxy in front of it that
// can stall subscriptions silently.
package fleettest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/internal/redisproc"
)

// Server is a redis-server the test owns. It is killed when the test ends.
type Server struct {
	// Addr is host:port on loopback.
	Addr string
	// Password is what the server requires, if started with one.
	Password string

	t    testing.TB
	dir  string
	args []string
	tls  *TLSFiles // serve TLS only
	// monitor makes the process a sentinel watching this master (host:port) under the name "mymaster".
	monitor string

	mu   sync.Mutex
	proc *redisproc.Process // nil once killed
	last *redisproc.Process // the last one started, whose log outlives Kill
}

// Start runs redis-server on a free loopback port, without persistence. extra are more `--name value`
// arguments; Password is picked up from `--requirepass`. It fails the test when redis-server is missing (the
// Makefile's deps target installs it).
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	return start(t, nil, extra)
}

// StartTLS is Start with TLS only, with the certificates of files (see NewTLSFiles). Client certificates are
// optional.
func StartTLS(t testing.TB, files *TLSFiles, extra ...string) *Server {
	t.Helper()
	return start(t, files, extra)
}

// SentinelMaster is the name StartSentinel monitors the master under.
const SentinelMaster = "mymaster"

// StartSentinel runs a Redis Sentinel (the same binary, in sentinel mode) that monitors master with a quorum
// of one.
func StartSentinel(t testing.TB, master *Server) *Server {
	t.Helper()
	return start(t, nil, nil, master.Addr)
}

func start(t testing.TB, files *TLSFiles, extra []string, monitor ...string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server not found: install the Debian package redis-server (make deps)")
	}
	s := &Server{t: t, dir: t.TempDir(), args: extra, tls: files}
	if len(monitor) > 0 {
		s.monitor = monitor[0]
	}
	for i, a := range extra {
		if a == "--requirepass" && i+1 < len(extra) {
			s.Password = extra[i+1]
		}
	}
	t.Cleanup(s.Kill)
	// A port found free can be taken before redis binds it: try again on another one.
	var last error
	for range 20 {
		port, err := redisproc.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		err = s.start(port)
		if err == nil {
			return s
		}
		last = err
		if !errors.Is(err, redisproc.ErrAddrInUse) {
			break
		}
	}
	t.Fatalf("starting redis-server: %v", last)
	return nil
}

// start runs redis-server on port and returns once it logged that it accepts connections: no polling.
func (s *Server) start(port int) error {
	args := redisproc.Args(port, s.dir)
	if f := s.tls; f != nil {
		args[1] = "0"
		args = append(args, "--tls-port", strconv.Itoa(port), "--tls-cert-file", f.Cert, "--tls-key-file", f.Key,
			"--tls-ca-cert-file", f.CA, "--tls-auth-clients", "optional")
	}
	readyLine := redisproc.Ready
	if s.monitor != "" {
		// A sentinel needs a config file it can rewrite; it is ready once it monitors the master.
		host, port, _ := net.SplitHostPort(s.monitor)
		conf := filepath.Join(s.dir, "sentinel.conf")
		if err := os.WriteFile(conf, []byte("sentinel monitor "+SentinelMaster+" "+host+" "+port+" 1\n"), 0o600); err != nil {
			return err
		}
		args = append([]string{conf, "--sentinel"}, args[:2]...)
		args = append(args, "--bind", "127.0.0.1", "--dir", s.dir, "--logfile", "")
		readyLine = "+monitor master"
	}
	args = append(args, s.args...)
	proc, err := redisproc.Start("redis-server", args, readyLine, startTimeout)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.proc, s.last = proc, proc
	s.mu.Unlock()
	return nil
}

// startTimeout bounds a start that never comes: redis-server is ready in milliseconds on an idle machine.
const startTimeout = time.Minute

// Kill stops the server at once (SIGKILL), as a crash would; its data is gone.
func (s *Server) Kill() {
	s.mu.Lock()
	proc := s.proc
	s.proc = nil
	s.mu.Unlock()
	if proc != nil {
		proc.Kill()
	}
}

// Restart starts the server again on the same port, empty, after Kill.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	_, p, _ := net.SplitHostPort(s.Addr)
	port, _ := strconv.Atoi(p)
	if err := s.start(port); err != nil {
		s.t.Fatalf("restarting redis-server on %s: %v", s.Addr, err)
	}
}

// Log returns the last lines the server logged, for failure messages.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		return ""
	}
	return s.last.Log()
}

// Do runs one command on a connection of its own and returns the reply as text: arrays one element per line,
// nil as "(nil)". An error reply is returned as an error.
func (s *Server) Do(args ...string) (string, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	var c net.Conn
	var err error
	if s.tls != nil {
		c, err = tls.DialWithDialer(d, "tcp", s.Addr, s.tls.ClientConfig())
	} else {
		c, err = d.Dial("tcp", s.Addr)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if s.Password != "" {
		if _, err := command(c, r, "AUTH", s.Password); err != nil {
			return "", fmt.Errorf("auth: %w", err)
		}
	}
	return command(c, r, args...)
}

// MustDo is Do failing the test on an error.
func (s *Server) MustDo(args ...string) string {
	s.t.Helper()
	out, err := s.Do(args...)
	if err != nil {
		s.t.Fatalf("redis %v: %v", args, err)
	}
	return out
}

func command(w io.Writer, r *bufio.Reader, args ...string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return "", err
	}
	return readReply(r)
}

// readReply reads one RESP2 reply.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "(nil)", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		parts := make([]string, 0, max(n, 0))
		for range n {
			p, err := readReply(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}
