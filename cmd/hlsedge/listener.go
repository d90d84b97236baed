package main

import (
	"errors"
	"net"
	"sync"
)

// rebindListener is the listener a server is handed once. A reload that changes the address moves it to a new
// socket underneath (rebind): the server's accept loop never stops, and connections already accepted, viewers'
// keep-alive connections and WebSockets included, stay open on the old address until they end.
type rebindListener struct {
	accepted chan accepted
	done     chan struct{}
	close    sync.Once

	mu  sync.Mutex
	cur net.Listener
}

type accepted struct {
	c   net.Conn
	err error
}

func newRebindListener(ln net.Listener) *rebindListener {
	l := &rebindListener{accepted: make(chan accepted), done: make(chan struct{}), cur: ln}
	go l.pump(ln)
	return l
}

// pump accepts on one socket and hands each connection to Accept, until the socket is closed by Close or
// replaced by rebind. A temporary error is handed on too, so that the server backs off as it would on its own
// listener; any other error ends the socket's accept loop, and the server's.
func (l *rebindListener) pump(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			l.mu.Lock()
			retired := l.cur != ln
			l.mu.Unlock()
			if retired || errors.Is(err, net.ErrClosed) {
				return
			}
		}
		select {
		case l.accepted <- accepted{c, err}:
		case <-l.done:
			if c != nil {
				_ = c.Close()
			}
			return
		}
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) && !isTemporary(err) {
			return
		}
	}
}

// isTemporary is what net/http and fasthttp retry on (too many open files and the like).
func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

func (l *rebindListener) Accept() (net.Conn, error) {
	select {
	case a := <-l.accepted:
		return a.c, a.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting on the current socket; connections already accepted are their server's to close.
func (l *rebindListener) Close() error {
	l.close.Do(func() {
		close(l.done)
		l.mu.Lock()
		_ = l.cur.Close()
		l.mu.Unlock()
	})
	return nil
}

func (l *rebindListener) Addr() net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur.Addr()
}

// rebind moves accepting to ln and closes the old socket. After Close it only closes ln.
func (l *rebindListener) rebind(ln net.Listener) {
	l.mu.Lock()
	select {
	case <-l.done:
		l.mu.Unlock()
		_ = ln.Close()
		return
	default:
	}
	old := l.cur
	l.cur = ln
	l.mu.Unlock()
	go l.pump(ln)
	_ = old.Close()
}
