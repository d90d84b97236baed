// Package redisproc runs a redis-server process on loopback and waits until it says it accepts connections:
// the Redis of `hlsedge demo --nodes N` and of the fleet tests.
package redisproc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Ready is the line redis-server logs once it accepts connections.
const Ready = "Ready to accept connections"

// ErrAddrInUse is a port found free that something else took before redis-server bound it: try another one.
var ErrAddrInUse = errors.New("redis-server: address already in use")

// Args are the arguments of a redis-server on 127.0.0.1:port without persistence, with its files in dir and its
// log on standard output.
func Args(port int, dir string) []string {
	return []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no", "--logfile", "", "--loglevel", "notice",
	}
}

// FreePort is a loopback port free at the time of the call. redis-server binds it itself, so another process may
// take it first: Start then reports ErrAddrInUse.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Process is a running redis-server.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	tail tail
}

// Start runs bin with args and returns once it logged a line containing ready. It fails with ErrAddrInUse when
// the port was taken, and with the process's last lines when it exits first or timeout passes; the process is
// gone then.
func Start(bin string, args []string, ready string, timeout time.Duration) (*Process, error) {
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting redis-server: %w", err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	readyc := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			p.tail.add(line)
			if sent {
				continue
			}
			switch {
			case strings.Contains(line, ready):
				readyc <- nil
				sent = true
			case strings.Contains(line, "Address already in use"):
				readyc <- ErrAddrInUse
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		if !sent {
			readyc <- fmt.Errorf("redis-server exited before it was ready:\n%s", p.tail.String())
		}
		close(p.done)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err = <-readyc:
	case <-t.C:
		err = fmt.Errorf("redis-server was not ready within %v:\n%s", timeout, p.tail.String())
	}
	if err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

// Kill stops the process at once (SIGKILL), as a crash would, and waits until it is gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Log returns the last lines the process logged, for error messages.
func (p *Process) Log() string { return p.tail.String() }

// tail keeps the last lines of the process's log.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(l string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 200 {
		t.lines = t.lines[1:]
	}
	t.lines = append(t.lines, l)
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}
