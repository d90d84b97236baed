package proxy

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// perIPLimit caps the public listener's open connections per client address (server.max_conns_per_ip). The
// listener keeps the count itself rather than leaving it to fasthttp's MaxConnsPerIP, which wraps every
// connection in a type of its own: the handler would then no longer find the timedConn that carries the
// connection's decision memo and its parsed peer address, and every request would take the slow path.
type perIPLimit struct {
	max int
	mu  sync.Mutex
	// open counts the connections of each address that has any; an address leaves with its last connection, so
	// the map holds no more entries than there are open connections.
	open map[netip.Addr]int
	// refusing bounds the refusals being written at once; beyond it a connection is closed without an answer.
	refusing chan struct{}
	// refusal is the whole 429 response an over-limit connection gets.
	refusal []byte
	// refused is told of each refusal, for the operator's metrics and log.
	refused func(netip.Addr)
}

// maxRefusing is how many over-limit connections may be answered with a 429 at once: each holds a goroutine for
// at most refuseTimeout, so a client that opens connections in a loop cannot make the listener hold more.
const (
	maxRefusing   = 64
	refuseTimeout = time.Second
)

func newPerIPLimit(max int, refused func(netip.Addr)) *perIPLimit {
	if max <= 0 {
		return nil
	}
	refusal := "HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Cache-Control: no-store\r\nContent-Length: " + strconv.Itoa(len(tooManyConnsReason)) + "\r\n\r\n" +
		tooManyConnsReason
	return &perIPLimit{max: max, open: make(map[netip.Addr]int), refusing: make(chan struct{}, maxRefusing),
		refusal: []byte(refusal), refused: refused}
}

// acquire counts one more connection from a, or reports that a already has max open.
func (p *perIPLimit) acquire(a netip.Addr) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open[a] >= p.max {
		return false
	}
	p.open[a]++
	return true
}

func (p *perIPLimit) release(a netip.Addr) {
	p.mu.Lock()
	if n := p.open[a] - 1; n > 0 {
		p.open[a] = n
	} else {
		delete(p.open, a)
	}
	p.mu.Unlock()
}

const tooManyConnsReason = "too many connections from your address\n"

// refuse answers an over-limit connection with a 429 and closes it, off the accept loop: on a TLS listener the
// write runs the handshake, which waits on the client.
func (p *perIPLimit) refuse(c net.Conn, peer netip.Addr) {
	if p.refused != nil {
		p.refused(peer)
	}
	select {
	case p.refusing <- struct{}{}:
	default:
		_ = c.Close()
		return
	}
	go func() {
		defer func() { <-p.refusing }()
		_ = c.SetDeadline(time.Now().Add(refuseTimeout))
		_, _ = c.Write(p.refusal)
		_ = c.Close()
	}()
}
