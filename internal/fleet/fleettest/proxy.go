package fleettest

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards loopback TCP connections to a Redis server. StallSubscribers makes it misbehave the way a
// failover can: subscription connections stay open, publishes still succeed, and nothing is delivered.
type Proxy struct {
	// Addr is where clients connect instead of the server.
	Addr string

	target string
	ln     net.Listener
	mu     sync.Mutex
	conns  []*proxyConn
	wg     sync.WaitGroup
}

type proxyConn struct {
	client, server net.Conn
	subscriber     atomic.Bool // the client sent a SUBSCRIBE
	stalled        atomic.Bool // server bytes are swallowed
}

// NewProxy starts a proxy to target on a free loopback port; it stops when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		pc := &proxyConn{client: c, server: s}
		p.mu.Lock()
		p.conns = append(p.conns, pc)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.up(pc)
		go p.down(pc)
	}
}

// up forwards client to server and notes connections that subscribe.
func (p *Proxy) up(pc *proxyConn) {
	defer p.wg.Done()
	defer pc.server.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := pc.client.Read(buf)
		if n > 0 {
			if bytes.Contains(bytes.ToUpper(buf[:n]), []byte("SUBSCRIBE")) {
				pc.subscriber.Store(true)
			}
			if _, werr := pc.server.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// down forwards server to client, unless the connection is stalled: then it reads and drops.
func (p *Proxy) down(pc *proxyConn) {
	defer p.wg.Done()
	defer pc.client.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := pc.server.Read(buf)
		if n > 0 && !pc.stalled.Load() {
			if _, werr := pc.client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// StallSubscribers silences every open connection that has subscribed: from now on nothing the server sends on
// it reaches the client, and the connection stays open. Connections made later are not affected. It returns
// how many connections it stalled.
func (p *Proxy) StallSubscribers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, pc := range p.conns {
		if pc.subscriber.Load() && !pc.stalled.Swap(true) {
			n++
		}
	}
	return n
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	for _, pc := range p.conns {
		pc.client.Close()
		pc.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
