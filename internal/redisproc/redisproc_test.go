package redisproc

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A port another process holds is ErrAddrInUse, so that callers try another one; a process that exits before
// it is ready is an error with its last lines; a ready one answers on its port until killed.
func TestStart(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := held.Addr().(*net.TCPAddr).Port
	if _, err := Start("redis-server", Args(port, t.TempDir()), Ready, time.Minute); !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("port held elsewhere: %v, want ErrAddrInUse", err)
	}

	if _, err := Start("redis-server", []string{"--no-such-option", "x"}, Ready, time.Minute); err == nil ||
		!strings.Contains(err.Error(), "exited before it was ready") {
		t.Fatalf("a bad option: %v", err)
	}

	// A port found free may be taken before redis-server binds it, by any process: try another one, as the
	// callers of FreePort do.
	var p *Process
	for range 20 {
		if port, err = FreePort(); err != nil {
			t.Fatal(err)
		}
		if p, err = Start("redis-server", Args(port, t.TempDir()), Ready, time.Minute); !errors.Is(err, ErrAddrInUse) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 10*time.Second)
	if err != nil {
		p.Kill()
		t.Fatalf("a ready redis-server does not answer: %v\n%s", err, p.Log())
	}
	c.Close()
	p.Kill()
	if !strings.Contains(p.Log(), Ready) {
		t.Errorf("the log keeps the process's lines:\n%s", p.Log())
	}
}
