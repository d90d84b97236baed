package signaling

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// Engine.IO's long-polling transport, which socket.io-client opens first by default, and the upgrade of a
// polling session to a WebSocket. A session is a conn without a WebSocket: its reader is the POST being handled
// (one at a time), and its writer is the pending GET (one at a time), which takes the send queue when Send wakes
// it. Everything else (limits, rate, strikes, heartbeat, expiry, the hub) is the conn's, as for a WebSocket.
//
// The upgrade follows Engine.IO 4: the client opens a WebSocket with the session's sid and sends `2probe`; the
// server answers `3probe` and from then on answers every GET at once (with `6`, a noop, when nothing is
// queued), so that the client can pause polling; the client then sends `5` on the WebSocket, which takes the
// session over. The server never waits on its clock for any of it.

var (
	// ErrPolling is a long-polling request that breaks the protocol.
	ErrPolling = errors.New("socket.io: bad polling request")
	// ErrUnknownSession is a polling request or upgrade for a sid this node does not hold.
	ErrUnknownSession = errors.New("socket.io: session ID unknown, expired, or held by another node " +
		"(polling needs every request of a session on the node that opened it)")
	// ErrTooManyPolling refuses a long-polling session when signaling.max_polling_sessions are open.
	ErrTooManyPolling = errors.New("socket.io: too many long-polling sessions; the websocket transport is still served")
	// ErrPollingOff refuses long polling when signaling.max_polling_sessions is negative.
	ErrPollingOff = errors.New("socket.io: long polling is turned off here; connect with transports: [\"websocket\"]")
)

const (
	// maxPollResponse is where a GET stops taking queued packets; the next GET takes the rest. One packet larger
	// than this (a long chat history) still goes whole.
	maxPollResponse = 256 << 10
	// pollCloseWait is how long an ended session's close packet waits for its GET. On the system clock, like the
	// wait for a WebSocket's close frame: it only bounds how long the table keeps a few bytes for a client.
	pollCloseWait = 10 * time.Second
	// packetSep separates the packets of a polling payload.
	packetSep = 0x1e
)

// pollState is a conn's long-polling side. Fields other than sid and wake are guarded by the conn's mu.
type pollState struct {
	sid string
	// wake has room for one token: Send, a close and an upgrade leave one for the pending GET without blocking.
	wake chan struct{}

	getting, posting bool
	endAfterPost     bool     // the session was closed during a POST, which ends it when done
	probing          bool     // a WebSocket with this sid is being upgraded
	upgrading        bool     // the probe was answered: GETs return at once, so that the client can pause polling
	upgraded         bool     // the WebSocket took the session over; polling requests are refused
	told             bool     // a GET carried the close packet
	probe            net.Conn // the probing WebSocket's connection, closed when the session ends first

	// parked is the pending GET's connection once fasthttp has let go of it (parkGet), with the Origin its
	// response echoes in Access-Control-Allow-Origin (nil for none).
	parked       net.Conn
	parkedOrigin []byte
}

// wakeGetLocked answers the pending GET when there is an answer: a parked GET here, on a goroutine that writes
// it, a waiting one by waking it.
func (c *conn) wakeGetLocked() {
	p := c.poll
	if p.parked == nil {
		select {
		case p.wake <- struct{}{}:
		default:
		}
		return
	}
	a, ok := c.pollAnswerLocked()
	if !ok {
		return
	}
	nc, origin := p.parked, p.parkedOrigin
	p.parked, p.parkedOrigin = nil, nil
	go c.writeParked(nc, origin, a)
}

// pollTable holds the polling sessions by sid, ended ones too while their close packet waits for a GET.
type pollTable struct {
	mu sync.Mutex
	m  map[string]*conn
}

func (t *pollTable) get(sid []byte) *conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[string(sid)]
}

func (t *pollTable) add(sid string, c *conn, max int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= max {
		return false
	}
	t.m[sid] = c
	return true
}

func (t *pollTable) remove(sid string, c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[sid] == c {
		delete(t.m, sid)
	}
}

func (t *pollTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// serveSocketIO serves the Socket.IO path: a WebSocket from the start, long polling, and the upgrade of a
// polling session to a WebSocket.
func (s *Server) serveSocketIO(ctx *fasthttp.RequestCtx) {
	q := ctx.QueryArgs()
	if string(q.Peek("EIO")) != "4" {
		s.refuseUpgrade(ctx, ErrEngineIOVersion)
		return
	}
	if !s.originAllowed(ctx) {
		s.refuseUpgrade(ctx, ErrOrigin)
		return
	}
	allowCORS(ctx)
	if ctx.IsOptions() {
		preflight(ctx)
		return
	}
	sid := q.Peek("sid")
	switch string(q.Peek("transport")) {
	case "polling":
		if len(sid) == 0 {
			s.pollOpen(ctx)
		} else {
			s.pollServe(ctx, sid)
		}
	case "websocket":
		if !websocket.FastHTTPIsWebSocketUpgrade(ctx) {
			ctx.Response.Header.Set("Upgrade", "websocket")
			refuse(ctx, fasthttp.StatusUpgradeRequired, "websocket upgrade required")
			return
		}
		if len(sid) > 0 {
			s.probeUpgrade(ctx, sid)
			return
		}
		c, err := s.admit(ctx)
		if err != nil {
			s.refuseUpgrade(ctx, err)
			return
		}
		c.codec, c.sio = SocketIOCodec{}, true
		s.upgrade(ctx, c)
	default:
		s.refuseUpgrade(ctx, ErrSocketIOTransport)
	}
}

// allowCORS lets a page on an allowed origin (originAllowed passed) read polling responses, with its cookies.
func allowCORS(ctx *fasthttp.RequestCtx) {
	o := ctx.Request.Header.Peek("Origin")
	if len(o) == 0 {
		return
	}
	h := &ctx.Response.Header
	h.SetBytesV("Access-Control-Allow-Origin", o)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Add("Vary", "Origin")
}

// preflight answers a CORS preflight: a cross-origin front end that sends the room in a header asks first.
func preflight(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.Set("Access-Control-Allow-Methods", "GET, POST")
	if rh := ctx.Request.Header.Peek("Access-Control-Request-Headers"); len(rh) > 0 && len(rh) <= 512 && headerList(rh) {
		h.SetBytesV("Access-Control-Allow-Headers", rh)
	}
	h.Set("Access-Control-Max-Age", "600")
	h.Set("Cache-Control", "no-store")
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// headerList reports whether b is a comma-separated list of header names, safe to echo.
func headerList(b []byte) bool {
	for _, c := range b {
		if c != ',' && c != ' ' && !tokenChar(c) {
			return false
		}
	}
	return true
}

// pollOpen is Engine.IO's handshake over polling: the same checks and limits as a WebSocket upgrade, then the
// open packet with the session's sid.
func (s *Server) pollOpen(ctx *fasthttp.RequestCtx) {
	switch {
	case s.conf().MaxPollingSessions < 0:
		s.refuseUpgrade(ctx, ErrPollingOff)
		return
	case !ctx.IsGet():
		s.refuseUpgrade(ctx, fmt.Errorf("%w: a polling session opens with a GET", ErrPolling))
		return
	case s.polls.len() >= s.conf().MaxPollingSessions:
		s.refuseUpgrade(ctx, ErrTooManyPolling)
		return
	}
	c, err := s.admit(ctx)
	if err != nil {
		s.refuseUpgrade(ctx, err)
		return
	}
	p := &pollState{sid: s.newPollSID(), wake: make(chan struct{}, 1)}
	// Until the namespace connect, the handshake is the client's last word: abandoned here, the session ends
	// after the handshake timeout.
	c.idleAt.Store(s.clock.Now().Add(s.conf().HandshakeTimeout).UnixNano())
	c.mu.Lock()
	c.codec, c.sio, c.poll = SocketIOCodec{}, true, p
	c.idleTimer = s.clock.AfterFunc(s.conf().HandshakeTimeout, c.idleCheck)
	c.mu.Unlock()
	if !s.polls.add(p.sid, c, s.conf().MaxPollingSessions) {
		c.stopTimers()
		s.release(c)
		s.refuseUpgrade(ctx, ErrTooManyPolling)
		return
	}
	s.m.pollSessions.Inc()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		c.closeWith(websocket.CloseGoingAway, "server shutting down") // Close may have missed it
	}
	pollHeaders(ctx)
	ctx.SetBody(s.openPacket(p.sid, true))
}

// newPollSID is a session's sid: random, after `<node_id>.` when the node has one, so that a balancer can send
// every request of a session to the node that holds it.
func (s *Server) newPollSID() string {
	if s.conf().NodeID == "" {
		return newSocketIOID()
	}
	return s.conf().NodeID + "." + newSocketIOID()
}

// pollServe serves a request of an open session.
func (s *Server) pollServe(ctx *fasthttp.RequestCtx, sid []byte) {
	c := s.polls.get(sid)
	if c == nil {
		s.pollRefuse(ctx, fasthttp.StatusBadRequest, s.unknownSession(sid))
		return
	}
	switch {
	case ctx.IsGet():
		c.pollGet(ctx)
	case ctx.IsPost():
		c.pollPost(ctx)
	default:
		ctx.Response.Header.Set("Allow", "GET, POST, OPTIONS")
		s.pollRefuse(ctx, fasthttp.StatusMethodNotAllowed, fmt.Errorf("%w: polling takes GET and POST", ErrPolling))
	}
}

// unknownSession names the node a sid belongs to when it is not this one: the balancer sent the request astray.
func (s *Server) unknownSession(sid []byte) error {
	node, _, ok := bytes.Cut(sid, []byte{'.'})
	if s.conf().NodeID == "" || !ok || string(node) == s.conf().NodeID || !validNodeID(string(node)) {
		return ErrUnknownSession
	}
	return fmt.Errorf("%w: this is node %q, the session is node %q's", ErrUnknownSession, s.conf().NodeID, node)
}

// pollRefuse answers a polling request that cannot be served, and logs why.
func (s *Server) pollRefuse(ctx *fasthttp.RequestCtx, status int, err error) {
	s.m.pollRefused.Inc()
	s.log.Debug("signaling: polling request refused", "status", status, "reason", err.Error(),
		"ip", ctx.RemoteIP().String())
	refuse(ctx, status, err.Error())
}

// pollEnterLocked checks that the session takes a request of method now, where inFlight says whether one is
// already being served: not after the upgrade, nor once closed (when refuseClosed is set), nor overlapping
// another of its method. Engine.IO has one GET and one POST at a time: a second is a broken client, whose
// session ends. Refused, the request is answered and c.mu unlocked.
func (c *conn) pollEnterLocked(ctx *fasthttp.RequestCtx, method string, inFlight, refuseClosed bool) bool {
	switch {
	case c.poll.upgraded:
		c.pollRefuseLocked(ctx, fasthttp.StatusBadRequest, "the session moved to its WebSocket", 0, "")
	case refuseClosed && c.closing:
		c.pollRefuseLocked(ctx, fasthttp.StatusBadRequest, "the session is closed", 0, "")
	case inFlight:
		c.pollRefuseLocked(ctx, fasthttp.StatusBadRequest, "overlapping "+method+" requests",
			websocket.ClosePolicyViolation, "overlapping polling requests")
	default:
		return true
	}
	return false
}

// pollRefuseLocked unlocks c.mu and refuses a request the session cannot take now. With a close code the client
// broke the protocol, and its session ends with that code and reason.
func (c *conn) pollRefuseLocked(ctx *fasthttp.RequestCtx, status int, why string, code int, reason string) {
	c.mu.Unlock()
	c.s.pollRefuse(ctx, status, fmt.Errorf("%w: %s", ErrPolling, why))
	if code != 0 {
		c.closeWith(code, reason)
	}
}

func pollHeaders(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.SetContentType("text/plain; charset=UTF-8")
}

// pollAnswer is what a GET answers with: queued packets, then the close packet when the session is over, or a
// noop when an upgrade needs the poll to end.
type pollAnswer struct {
	batch        []*Message
	closed, noop bool
}

// pollAnswerLocked takes what the pending GET can answer with now (queued packets, up to maxPollResponse) and
// ends that GET; false when it must wait.
func (c *conn) pollAnswerLocked() (pollAnswer, bool) {
	var a pollAnswer
	p := c.poll
	if len(c.queue) > 0 && !c.held {
		n, size := 0, 0
		for n < len(c.queue) && (n == 0 || size < maxPollResponse) {
			size += len(c.queue[n].frame(c.codec)) + 1
			n++
		}
		a.batch = append(a.batch, c.queue[:n]...)
		clear(c.queue[:n])
		c.queue = c.queue[n:]
		if len(c.queue) == 0 {
			c.queue = nil // the drained array goes: an idle session holds no queue
		}
	}
	// The close packet goes in a later response than a namespace disconnect: socket.io-client handles a
	// payload's messages a tick after its close packet, and would take the close for a lost connection and
	// reconnect.
	if c.closing && len(c.queue) == 0 && (len(a.batch) == 0 || a.batch[len(a.batch)-1] != sioDisconnectMessage) {
		a.closed = true
	}
	switch {
	case len(a.batch) > 0 || a.closed:
	case p.upgrading || p.upgraded:
		a.noop = true
	default:
		return a, false
	}
	p.getting = false
	if a.closed {
		p.told = true
	}
	return a, true
}

// appendBody appends the answer's payload: its packets separated by 0x1e.
func (a *pollAnswer) appendBody(dst []byte, codec Codec) []byte {
	for i, m := range a.batch {
		if i > 0 {
			dst = append(dst, packetSep)
		}
		dst = append(dst, m.frame(codec)...)
	}
	switch {
	case a.closed && len(a.batch) > 0:
		dst = append(dst, packetSep, eioClose)
	case a.closed:
		dst = append(dst, eioClose)
	case a.noop:
		dst = append(dst, eioNoop)
	}
	return dst
}

// pollGet is the session's writer: it answers with every packet queued (up to maxPollResponse), the close
// packet once the session is over, or a noop when an upgrade needs the poll to end. With nothing to say it
// waits, parked outside fasthttp when sockets are detached. The wait needs no timer of its own: the heartbeat
// queues a ping every ping interval.
func (c *conn) pollGet(ctx *fasthttp.RequestCtx) {
	p := c.poll
	c.mu.Lock()
	if !c.pollEnterLocked(ctx, "GET", p.getting, false) {
		return
	}
	p.getting = true
	a, ok := c.pollAnswerLocked()
	if !ok && c.s.detach.Load() {
		c.mu.Unlock()
		c.parkGet(ctx)
		return
	}
	for !ok {
		c.mu.Unlock()
		<-p.wake
		c.mu.Lock()
		a, ok = c.pollAnswerLocked()
	}
	c.mu.Unlock()
	pollHeaders(ctx)
	ctx.Response.SetBodyRaw(a.appendBody(nil, c.codec))
	c.s.m.sent.Add(len(a.batch))
	if a.closed {
		c.s.polls.remove(p.sid, c)
	}
}

// parkGet is the slow path of a GET with nothing to answer yet, which is what an idle session's GET is. Blocked
// in the handler, it would keep a fasthttp worker goroutine and the connection's read and write buffers (72 KiB
// with the edge's defaults) for as long as the session is idle. Hijacked without a response instead, it leaves
// fasthttp holding nothing: the connection waits in pollState, and wakeGetLocked writes the answer on it.
// DetachSockets made srv keep hijacked connections open.
func (c *conn) parkGet(ctx *fasthttp.RequestCtx) {
	raw := ctx.Conn()
	var origin []byte
	if o := ctx.Request.Header.Peek("Origin"); len(o) > 0 && headerValue(o) {
		origin = append(origin, o...) // originAllowed passed it
	}
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(net.Conn) {
		c.mu.Lock()
		p := c.poll
		// Anything that came while fasthttp finished the request was left for the parked GET.
		a, ok := c.pollAnswerLocked()
		if !ok {
			p.parked, p.parkedOrigin = raw, origin
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		go c.writeParked(raw, origin, a)
	})
}

// writeParked answers a parked GET on its connection and closes it: the client's next GET comes on a new one.
// Only a GET that waited pays for that; one with an answer ready keeps its connection.
func (c *conn) writeParked(nc net.Conn, origin []byte, a pollAnswer) {
	s := c.s
	body := a.appendBody(nil, c.codec)
	b := make([]byte, 0, 256+len(origin)+len(body))
	b = append(b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nCache-Control: no-store\r\n"+
		"X-Content-Type-Options: nosniff\r\nConnection: close\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	if len(origin) > 0 {
		b = append(b, "\r\nAccess-Control-Allow-Origin: "...)
		b = append(b, origin...)
		b = append(b, "\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin"...)
	}
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	if a.closed {
		s.polls.remove(c.poll.sid, c)
	}
	_ = nc.SetWriteDeadline(time.Now().Add(s.conf().WriteTimeout))
	if _, err := nc.Write(b); err != nil {
		s.m.writeErrors.Inc()
		_ = nc.Close()
		return
	}
	s.m.sent.Add(len(a.batch))
	// The client closes first, as Connection: close asks, so that the TIME_WAIT is its and not the server's. A
	// client that does not is cut off after closeGrace, on the system clock like any socket deadline.
	_ = nc.SetReadDeadline(time.Now().Add(closeGrace))
	var buf [64]byte
	for {
		if _, err := nc.Read(buf[:]); err != nil {
			break
		}
	}
	_ = nc.Close()
}

// headerValue reports whether b may be echoed in a response header.
func headerValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// pollPost is the session's reader: it handles the packets of one POST, in order, as a WebSocket's frames.
func (c *conn) pollPost(ctx *fasthttp.RequestCtx) {
	p := c.poll
	body := ctx.PostBody()
	c.mu.Lock()
	if !c.pollEnterLocked(ctx, "POST", p.posting, true) {
		return
	}
	if int64(len(body)) > c.s.maxPayload() {
		c.pollRefuseLocked(ctx, fasthttp.StatusRequestEntityTooLarge, "payload larger than maxPayload",
			websocket.CloseMessageTooBig, "payload too large")
		return
	}
	p.posting = true
	c.mu.Unlock()
	if c.nsJoined {
		c.touch() // before the namespace connect, the handshake timeout stands
	}
	for len(body) > 0 && !c.isClosing() {
		var pkt []byte
		pkt, body, _ = bytes.Cut(body, []byte{packetSep})
		c.s.m.received.Inc()
		c.handle(pkt)
	}
	c.mu.Lock()
	p.posting = false
	end := p.endAfterPost
	p.endAfterPost = false
	c.mu.Unlock()
	if end {
		c.end()
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetContentType("text/html")
	ctx.SetBodyString("ok")
}

// closePollLocked ends a polling session; c.mu is held, and released. The pending GET, or the next one, takes
// the close packet (after the queue when keep is set); the conference forgets the session now, or when the POST
// being handled is done.
func (c *conn) closePollLocked(code int, reason string, keep bool) {
	p := c.poll
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing, c.held = true, false
	if !keep {
		c.queue = nil
	}
	c.wakeGetLocked()
	endNow := !p.posting
	p.endAfterPost = !endNow
	c.mu.Unlock()
	if code != 0 {
		c.s.m.closed(code).Inc()
	}
	c.s.log.Debug("signaling: closing polling session", "code", code, "reason", reason, "room", c.key.Room)
	if endNow {
		c.end()
	}
}

// retirePoll takes an ended session out of the table, or leaves it there for pollCloseWait when its close packet
// still waits for a GET.
func (s *Server) retirePoll(c *conn) {
	c.mu.Lock()
	p := c.poll
	wait := !p.told && !p.upgraded
	c.mu.Unlock()
	if !wait {
		s.polls.remove(p.sid, c)
		return
	}
	time.AfterFunc(pollCloseWait, func() { s.polls.remove(p.sid, c) })
}

// probeUpgrade starts the upgrade of a polling session to the WebSocket this request opens. The sid, unguessable
// and known only to the client that opened the session, is the credential, as in Engine.IO; the Origin was
// checked like any upgrade's.
func (s *Server) probeUpgrade(ctx *fasthttp.RequestCtx, sid []byte) {
	c := s.polls.get(sid)
	if c == nil {
		s.refuseUpgrade(ctx, s.unknownSession(sid))
		return
	}
	p := c.poll
	c.mu.Lock()
	if c.closing || p.upgraded || p.probing {
		c.mu.Unlock()
		s.refuseUpgrade(ctx, fmt.Errorf("%w: the session is closed, upgraded or being upgraded", ErrPolling))
		return
	}
	p.probing = true
	c.mu.Unlock()
	abort := func() {
		c.mu.Lock()
		p.probing = false
		c.mu.Unlock()
	}
	if s.detach.Load() {
		if err := s.upgradeDetached(ctx, c.runProbe, abort); err != nil {
			abort()
			s.refuseUpgrade(ctx, err)
		}
		return
	}
	if err := s.settings().upgrader.Upgrade(ctx, c.runProbe); err != nil {
		abort()
	}
}

// runProbe runs the probe on the new WebSocket and, once the client sends `5`, makes it the session's transport
// and becomes the session's reader. A probe that fails leaves the session on polling.
func (c *conn) runProbe(ws *websocket.Conn) {
	s := c.s
	p := c.poll
	raw := netConnOf(ws)
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		_ = raw.Close()
		return
	}
	p.probe = raw
	c.mu.Unlock()
	upgraded := false
	defer func() {
		if upgraded {
			return
		}
		c.mu.Lock()
		p.probing, p.upgrading, p.probe = false, false, nil
		c.mu.Unlock()
		_ = raw.Close()
	}()
	ws.SetReadLimit(s.conf().ReadLimit)
	_ = raw.SetReadDeadline(time.Now().Add(s.conf().HandshakeTimeout))
	if !readPacket(ws, "2probe") {
		return
	}
	_ = raw.SetWriteDeadline(time.Now().Add(s.conf().WriteTimeout))
	if ws.WriteMessage(websocket.TextMessage, []byte("3probe")) != nil {
		return
	}
	c.mu.Lock()
	p.upgrading = true
	c.wakeGetLocked() // the pending GET returns, with a noop if nothing is queued: the client pauses polling
	c.mu.Unlock()
	if !readPacket(ws, string(eioUpgrade)) {
		return
	}
	// Silence is the idle timer's to judge from here, as for any socket.
	_ = raw.SetReadDeadline(time.Time{})
	ws.SetPongHandler(func(string) error {
		c.touch()
		return nil
	})
	c.mu.Lock()
	if c.closing || p.posting {
		c.mu.Unlock() // ended meanwhile, or a client that POSTs while it upgrades: the session stays as it was
		return
	}
	c.ws, c.raw = ws, raw
	p.upgraded, p.upgrading, p.probing, p.probe = true, false, false, nil
	c.wakeGetLocked()
	start := len(c.queue) > 0 && c.flushLocked()
	c.mu.Unlock()
	upgraded = true
	s.m.transportUpgrades.Inc()
	if start {
		go c.writeLoop()
	}
	if c.nsJoined {
		c.touch()
	}
	defer c.end()
	c.readLoop(ws)
}

// readPacket reads one frame and reports whether it is the text packet want.
func readPacket(ws *websocket.Conn, want string) bool {
	mt, b, err := ws.ReadMessage()
	return err == nil && mt == websocket.TextMessage && string(b) == want
}

// validNodeID reports whether id may name a node in a sid: short, and plain in a URL.
func validNodeID(id string) bool {
	if id == "" || len(id) > 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
