package signaling

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
)

// closeGrace is how long the server waits for the client's close frame after sending its own.
const closeGrace = time.Second

// conn is one socket. The goroutine running run is its only reader; a writer goroutine exists only while
// the send queue is not empty, so an idle socket costs one goroutine, not two.
type conn struct {
	s       *Server
	ws      *websocket.Conn
	raw     net.Conn // the TCP connection under fasthttp's hijack wrapper; safe to close from any goroutine
	key     ConfKey
	sess    Session
	codec   Codec
	sio     bool // Socket.IO framing: Engine.IO handshake and text-frame heartbeat
	waiting bool // the conference had a waiting room when the socket opened
	// poll is the Engine.IO long-polling session the socket began as (polling.go); nil for one opened as a
	// WebSocket. It stays after an upgrade, which sets ws.
	poll *pollState

	// Reader only: the goroutine reading the WebSocket, or the POST being handled for long polling.
	rate, strikes bucket
	nsJoined      bool   // Socket.IO: the client connected to the main namespace
	ackID         int64  // Socket.IO: the ack id of the event being handled, -1 when it asked for none
	ackErr        []byte // Socket.IO: the error that refused the event being handled, for its ack

	// role routes the hub's deliveries; guarded by the node's lock on the conference.
	role Role

	// idleAt is when the socket counts as idle (unix nanoseconds on the server's clock). Reads move it; the idle
	// timer looks at it only when it fires.
	idleAt atomic.Int64

	mu        sync.Mutex
	queue     []*Message
	writing   bool
	held      bool // queue without writing: the socket is joining its conference
	closing   bool
	sealed    bool // no more sends: a close follows what is queued
	pendClose closeReq
	expires   time.Time
	expGen    uint64
	expTimer  timer
	pingTimer timer
	idleTimer timer
	joined    bool     // join ran: end undoes it
	joinAcks  []uint64 // Socket.IO: join_waiting_room acks waiting for the hub's answer, oldest first

	// Without DetachSockets, fasthttp recycles the hijacked connection wrapper as soon as run returns, so every
	// use of ws outside the reader goroutine is an op: run waits for ops to finish, and no op starts once dead is set.
	dead bool
	ops  sync.WaitGroup
}

// enter starts an op on ws from a goroutine other than the reader; false when the socket is gone.
func (c *conn) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead || c.ws == nil {
		return false
	}
	c.ops.Add(1)
	return true
}

// Send queues m and returns at once. A client whose queue is full is dropped rather than allowed to hold up the
// fan-out or grow without bound.
func (c *conn) Send(m *Message) {
	c.mu.Lock()
	if c.closing || c.sealed {
		c.mu.Unlock()
		return
	}
	if len(c.queue) >= c.s.conf().SendQueue {
		c.mu.Unlock()
		c.s.m.slow.Inc()
		go c.closeWith(websocket.ClosePolicyViolation, "client too slow: send queue full")
		return
	}
	c.queue = append(c.queue, m)
	if len(c.joinAcks) > 0 && answersJoin(m.Event) {
		// Slow path: the hub's answer to a join_waiting_room that asked for an ack, which follows it.
		c.queue = append(c.queue, ackMessage(c.joinAcks[0], m.Data))
		c.joinAcks = c.joinAcks[1:]
	}
	start := c.flushLocked()
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// flushLocked gets the queue delivered: by the pending GET for long polling, else by a writer goroutine, which
// the caller starts once unlocked when it returns true.
func (c *conn) flushLocked() bool {
	if c.writing || c.held {
		return false
	}
	if c.ws == nil {
		if c.poll != nil {
			c.wakeGetLocked()
		}
		return false
	}
	c.writing = true
	return true
}

// unhold starts writing what was queued while the socket joined its conference.
func (c *conn) unhold() {
	c.mu.Lock()
	c.held = false
	start := !c.closing && (len(c.queue) > 0 || c.sealed) && c.flushLocked()
	c.mu.Unlock()
	if start {
		go c.writeLoop() // with an empty queue and a seal, it closes
	}
}

// writeLoop drains the queue and exits when it is empty.
func (c *conn) writeLoop() {
	if !c.enter() {
		c.mu.Lock()
		c.writing, c.queue = false, nil
		c.mu.Unlock()
		return
	}
	defer c.ops.Done()
	for {
		c.mu.Lock()
		batch := c.queue
		if c.closing || len(batch) == 0 {
			c.writing = false
			if cap(batch) > 64 {
				c.queue = nil // a burst's queue is not kept by an idle socket
			}
			closeNow := c.sealed && !c.closing
			req := c.pendClose
			c.mu.Unlock()
			if closeNow {
				go c.closeWith(req.code, req.reason) // a new op: this one ends when we return
			}
			return
		}
		c.queue = nil
		c.mu.Unlock()
		for i, m := range batch {
			_ = c.ws.SetWriteDeadline(time.Now().Add(c.s.conf().WriteTimeout))
			if err := c.ws.WriteMessage(websocket.TextMessage, m.frame(c.codec)); err != nil {
				c.mu.Lock()
				c.closing, c.writing, c.queue = true, false, nil
				c.mu.Unlock()
				c.s.m.writeErrors.Inc()
				_ = c.raw.Close()
				return
			}
			batch[i] = nil
		}
		c.s.m.sent.Add(len(batch))
		c.mu.Lock()
		if c.queue == nil {
			c.queue = batch[:0]
		}
		c.mu.Unlock()
	}
}

type closeReq struct {
	code   int
	reason string
}

// closeAfterQueue closes once what is already queued (the error that explains the close, the last chat
// messages) has been written. A slow client's writer never finishes; its write timeout ends it instead.
//
// Every caller ends the session for good (token expiry, abuse, the conference's end, a kick), so a Socket.IO
// client is told why and then gets the namespace disconnect, after which socket.io-client does not reconnect:
// retrying with the same cookie would only be refused again.
func (c *conn) closeAfterQueue(code int, reason string) {
	c.mu.Lock()
	if c.closing || c.sealed {
		c.mu.Unlock()
		return
	}
	if c.sio && c.joined {
		// Past the queue's bound on purpose: two small frames, once.
		why := newMessage(evServerDisconnect, map[string]any{"code": code, "reason": reason})
		c.queue = append(c.queue, why, sioDisconnectMessage)
	}
	if c.ws == nil && c.poll != nil {
		c.closePollLocked(code, reason, true) // the GET takes the queue, then the close packet
		return
	}
	if c.writing || c.held || len(c.queue) > 0 {
		c.sealed, c.pendClose = true, closeReq{code, reason}
		start := c.flushLocked()
		c.mu.Unlock()
		if start {
			go c.writeLoop() // writes the queue, then closes
		}
		return
	}
	c.mu.Unlock()
	c.closeWith(code, reason)
}

// closeWith sends a close frame and lets the reader finish: it reads until the client answers or closeGrace
// passes, so that the client sees the reason before the TCP connection goes.
func (c *conn) closeWith(code int, reason string) {
	c.mu.Lock()
	if c.ws == nil && c.poll != nil {
		c.closePollLocked(code, reason, false)
		return
	}
	if c.closing || c.ws == nil || c.dead {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.queue = nil
	c.ops.Add(1)
	c.mu.Unlock()
	defer c.ops.Done()
	c.s.m.closed(code).Inc()
	c.s.log.Debug("signaling: closing socket", "code", code, "reason", reason, "room", c.key.Room)
	deadline := time.Now().Add(min(c.s.conf().WriteTimeout, closeGrace))
	if err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline); err != nil {
		_ = c.raw.Close()
		return
	}
	_ = c.raw.SetReadDeadline(time.Now().Add(closeGrace))
}

func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// run is the upgraded socket's life: on a goroutine of ours when the socket is detached, else on fasthttp's
// hijack goroutine.
func (c *conn) run(ws *websocket.Conn) {
	s := c.s
	raw := netConnOf(ws)
	c.mu.Lock()
	c.ws, c.raw = ws, raw
	c.mu.Unlock()
	defer c.end()
	ws.SetReadLimit(s.conf().ReadLimit)
	ws.SetPongHandler(func(string) error {
		c.touch()
		return nil
	})

	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		c.closeWith(websocket.CloseGoingAway, "server shutting down")
		return
	}
	if c.sio {
		ok := false
		c.shallow(func() { ok = c.sioOpen(ws) })
		if !ok {
			return
		}
	}
	// From here silence is the idle timer's to judge, not a read deadline's: the timer runs on the server's
	// clock.
	_ = raw.SetReadDeadline(time.Time{})
	c.join()
	c.readLoop(ws)
}

// netConnOf returns the TCP connection under ws, unwrapped from fasthttp's hijack wrapper: safe to close and to
// set deadlines on from any goroutine.
func netConnOf(ws *websocket.Conn) net.Conn {
	raw := ws.NetConn()
	if u, ok := raw.(interface{ UnsafeConn() net.Conn }); ok {
		raw = u.UnsafeConn()
	}
	return raw
}

// join makes the socket a member of its conference, on its reader: heartbeat, `connected`, the expiry timer, then
// the node and the hub. The heartbeat is armed before `connected`, so that a client which has it knows the
// heartbeat is running.
func (c *conn) join() {
	s := c.s
	c.mu.Lock()
	c.touch()
	if c.idleTimer == nil {
		c.idleTimer = s.clock.AfterFunc(s.conf().IdleTimeout, c.idleCheck)
	} else {
		c.idleTimer.Reset(s.conf().IdleTimeout) // long polling armed it for the handshake
	}
	c.pingTimer = s.clock.AfterFunc(s.conf().PingInterval, c.ping)
	// Until the hub knows the session, nothing is written: a client holding `connected` is in its conference, so
	// an admin call it makes next (ending the conference, say) reaches it. The hub's first deliveries (the
	// moderator's waiting list) queue behind `connected`.
	c.held = true
	c.joined = true
	c.mu.Unlock()
	c.shallow(func() {
		c.Send(newMessage(evConnected, map[string]any{
			"room":         c.key.Room,
			"content_id":   c.key.ContentID,
			"user":         &c.sess.User,
			"moderator":    c.sess.User.Moderator,
			"waiting_room": c.waiting,
			"expires_at":   c.expires.Unix(), // only the reader changes it, later
		}))
	})
	c.mu.Lock()
	warn := c.armExpiryLocked(s.clock.Now())
	c.mu.Unlock()
	if warn {
		c.warnExpiry()
	}
	// The node knows the socket before the hub knows its session, so the hub's first delivery finds it.
	s.node.add(c)
	var err error
	c.shallow(func() { err = s.hubErr("connect", s.hub.Connect(c.key, c.sess)) })
	if err != nil {
		c.closeWith(websocket.CloseTryAgainLater, err.Error())
	}
	c.unhold()
}

// readLoop reads the WebSocket until it fails or the client's close frame arrives.
func (c *conn) readLoop(ws *websocket.Conn) {
	s := c.s
	for {
		mt, r, err := ws.NextReader()
		if err != nil {
			c.readFailed(err)
			return
		}
		c.touch()
		if c.isClosing() {
			c.awaitClose(ws) // late messages are not handled
			return
		}
		// The frame buffer is borrowed per message: an idle socket holds none.
		bp := s.readBufs.Get().(*[]byte)
		buf, err := readAll(r, (*bp)[:0])
		if err != nil {
			s.readBufs.Put(bp)
			c.readFailed(err)
			return
		}
		s.m.received.Inc()
		if mt != websocket.TextMessage {
			c.shallow(func() { c.strike("", "binary frames are not supported") })
		} else {
			c.shallow(func() { c.handle(buf) })
		}
		if cap(buf) <= 16<<10 {
			*bp = buf // one large frame must not pin a large buffer in the pool
			s.readBufs.Put(bp)
		}
	}
}

// awaitClose discards what the client sends until it answers the close frame or the read deadline passes; every
// reader that finds its socket closing ends here. Returning at once would let end close the TCP connection before
// closeWith has written the close frame, and the client would see a bare EOF instead of the reason.
func (c *conn) awaitClose(ws *websocket.Conn) {
	for {
		if _, _, err := ws.NextReader(); err != nil {
			c.readFailed(err)
			return
		}
	}
}

// end is the session's teardown, run once when its reader is done: the WebSocket's reader goroutine, or for long
// polling whoever ended the session (after the POST being handled, if one was).
func (c *conn) end() {
	s := c.s
	c.mu.Lock()
	joined := c.joined
	c.mu.Unlock()
	if joined {
		s.hub.Disconnect(c.key, c.sess)
		s.node.remove(c)
	}
	c.stopTimers()
	c.mu.Lock()
	c.dead, c.closing = true, true
	raw := c.raw
	var probe net.Conn
	if c.poll != nil {
		probe = c.poll.probe
	}
	c.mu.Unlock()
	if raw != nil {
		_ = raw.Close() // unblocks a writer stuck on a slow client
		c.ops.Wait()
	}
	if probe != nil {
		_ = probe.Close() // an upgrade under way finds the session gone
	}
	if c.poll != nil {
		s.retirePoll(c)
	}
	s.release(c)
}

// shallow runs f on a borrowed goroutine and waits for it. The reader goroutine lives as long as the socket and
// keeps the largest stack it ever needed: decoding one JSON event would grow it to 8-16 KiB for good, which at
// ten thousand mostly idle sockets is most of their memory. Blocked in a read, it needs a fraction of that.
func (c *conn) shallow(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

// readFailed records why the reader stopped. The library has already answered an oversized frame with 1009.
func (c *conn) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		c.s.m.closed(websocket.CloseMessageTooBig).Inc()
	case c.isClosing():
	case errors.As(err, &ne) && ne.Timeout():
		c.s.m.idle.Inc()
	}
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
}

func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// touch moves the idle deadline: the client just sent something.
func (c *conn) touch() {
	c.idleAt.Store(c.s.clock.Now().Add(c.s.conf().IdleTimeout).UnixNano())
}

// idleCheck runs when the idle timer fires. Reads only move idleAt, which is cheaper than re-arming a timer per
// frame: the timer re-arms itself for what is left, and ends the socket when nothing is.
func (c *conn) idleCheck() {
	left := time.Duration(c.idleAt.Load() - c.s.clock.Now().UnixNano())
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return // a close is under way and has its own deadline
	}
	if left > 0 {
		c.idleTimer.Reset(left)
		c.mu.Unlock()
		return
	}
	if c.ws == nil && c.poll != nil {
		// Long polling has no reader to wake: an abandoned session ends here.
		c.s.m.idle.Inc()
		c.closePollLocked(0, "idle timeout", false)
		return
	}
	// The reader wakes with a timeout, which readFailed counts as an idle close.
	_ = c.raw.SetReadDeadline(aLongTimeAgo)
	c.mu.Unlock()
}

func (c *conn) ping() {
	if c.sio {
		// Engine.IO's heartbeat is a text frame, so it takes its turn in the queue; the client's "3" answers it.
		c.Send(sioPingMessage)
		c.mu.Lock()
		if !c.closing && c.pingTimer != nil {
			c.pingTimer.Reset(c.s.conf().PingInterval)
		}
		c.mu.Unlock()
		return
	}
	if c.isClosing() || !c.enter() {
		return
	}
	err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.s.conf().WriteTimeout))
	c.ops.Done()
	if err != nil {
		_ = c.raw.Close()
		return
	}
	c.mu.Lock()
	if !c.closing && c.pingTimer != nil {
		c.pingTimer.Reset(c.s.conf().PingInterval)
	}
	c.mu.Unlock()
}

func (c *conn) stopTimers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closing = true
	if c.pingTimer != nil {
		c.pingTimer.Stop()
	}
	if c.expTimer != nil {
		c.expTimer.Stop()
	}
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	c.expGen++
}

// armExpiryLocked schedules `token_expiring` ahead of expiry and the close at expiry (plus leeway, as the upgrade
// check allowed), for the current token. A refresh re-arms it; expGen discards a timer that fired meanwhile.
// When the token is already inside the warning window it returns true: the caller warns once it has unlocked.
func (c *conn) armExpiryLocked(now time.Time) (warnNow bool) {
	if c.expTimer != nil {
		c.expTimer.Stop()
	}
	c.expGen++
	gen := c.expGen
	end := c.expires.Add(c.s.settings().ver.leeway)
	warnAt := c.expires.Add(-c.s.conf().TokenExpiryWarning)
	d := warnAt.Sub(now)
	warned := false
	if d <= 0 {
		// Already inside the warning window: warn now, close at expiry.
		warned = true
		d = end.Sub(now)
	}
	c.expTimer = c.s.clock.AfterFunc(max(d, 0), func() {
		c.mu.Lock()
		if c.expGen != gen || c.closing {
			c.mu.Unlock()
			return
		}
		if !warned {
			warned = true
			c.expTimer.Reset(max(end.Sub(c.s.clock.Now()), 0))
			c.mu.Unlock()
			c.warnExpiry()
			return
		}
		c.mu.Unlock()
		c.closeAfterQueue(CloseTokenExpired, "token expired")
	})
	return warned
}

func (c *conn) warnExpiry() {
	c.mu.Lock()
	exp := c.expires
	c.mu.Unlock()
	c.Send(newMessage(evTokenExpiring, map[string]any{
		"expires_at": exp.Unix(),
		"expires_in": max(int64(exp.Sub(c.s.clock.Now()).Seconds()), 0),
	}))
}

// bucket is a token bucket; the reader goroutine is its only user.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func (b *bucket) take(now time.Time) bool {
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}
