package signaling

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/authz/token"
)

// Close codes the server sends besides the standard ones (1001 shutdown, 1008 policy, 1009 frame too big, 1013
// conference state unavailable).
const (
	// CloseTokenExpired: the token ran out and no refresh_token arrived in time. Reconnect with a new token.
	CloseTokenExpired = 4001
	// CloseConferenceEnded: the conference was deleted or replaced by a new run through the admin API.
	CloseConferenceEnded = 4002
)

// Server is the conference signaling endpoint. It owns no listener: the edge mounts ServeWS and
// ServeConferencesAPI on its own fasthttp servers.
type Server struct {
	// cur is what a reload replaces: the config, the verifier, the origin allow-list and the upgraders. Every
	// use loads it, so an open socket follows a reload from its next message on.
	cur atomic.Pointer[settings]
	log *slog.Logger
	detachState
	m     *sigMetrics
	clock clock
	// writeBufs is shared by the upgraders of every reload: most sockets are idle, and fan-out frames are small.
	writeBufs sync.Pool

	// hub holds the state shared with other nodes; node holds this server's sockets and receives the hub's
	// deliveries for them.
	hub       Hub
	ownHub    bool // built by New, so closed by Close
	node      *node
	detachHub func()

	// Session IDs are a random prefix per server and a counter: unique among the nodes sharing a hub, cheap.
	sessPrefix string
	sessSeq    atomic.Uint64

	// readBufs holds frame buffers: a socket only needs one while it handles a message.
	readBufs sync.Pool

	// polls holds the Engine.IO long-polling sessions by sid.
	polls pollTable

	mu      sync.Mutex
	conns   map[*conn]struct{}
	perConf map[ConfKey]int
	closed  bool
	wg      sync.WaitGroup
}

// Option sets what a Server takes besides its Config.
type Option func(*Server)

// WithHub makes the server keep conference state in h, which it shares with the other servers given h: the
// nodes of a fleet. h applies its own reconnect grace, chat history and default waiting room, so build it from
// the same signaling config; the caller closes it after the servers. Without it a server keeps its own memory
// hub.
func WithHub(h Hub) Option { return func(s *Server) { s.hub = h } }

// withClock drives the server's timers from c: tests pass a manual clock.
func withClock(c clock) Option { return func(s *Server) { s.clock = c } }

// New builds a Server. cfg is copied and defaulted; ms receives the signaling metrics and may be nil.
func New(cfg Config, log *slog.Logger, ms *metrics.Set, opts ...Option) (*Server, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		log:        log,
		clock:      systemClock{},
		node:       newNode(),
		sessPrefix: newSessionPrefix(),
		conns:      map[*conn]struct{}{},
		perConf:    map[ConfKey]int{},
		polls:      pollTable{m: map[string]*conn{}},
	}
	st, err := s.newSettings(cfg)
	if err != nil {
		return nil, err
	}
	s.cur.Store(st)
	for _, o := range opts {
		o(s)
	}
	if s.hub == nil {
		s.hub, s.ownHub = newMemHub(cfg.ReconnectGrace, cfg.ChatHistory, *cfg.DefaultWaitingRoom, s.clock), true
	}
	s.detachHub = s.hub.Attach(s.node)
	s.readBufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	if ms == nil {
		ms = metrics.NewSet()
	}
	s.m = newSigMetrics(ms, s)
	return s, nil
}

// Path is where ServeWS expects to be mounted for the JSON framing.
func (s *Server) Path() string { return s.conf().Path }

// Handles reports whether ServeWS serves path: the JSON endpoint or the Socket.IO one.
func (s *Server) Handles(path []byte) bool {
	return string(path) == s.conf().Path || s.isSocketIOPath(path)
}

func (s *Server) isSocketIOPath(path []byte) bool {
	cfg := s.conf()
	return cfg.SocketIOPath != "off" && string(path) == cfg.SocketIOPath
}

// Close ends every socket with 1001 and waits, bounded by the write timeout, for their goroutines. Then it
// detaches from the hub, and closes it when it is the server's own.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	all := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		all = append(all, c)
	}
	s.mu.Unlock()
	for _, c := range all {
		go c.closeWith(websocket.CloseGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.conf().WriteTimeout + closeGrace):
		s.log.Warn("signaling: sockets still open after shutdown wait", "sockets", s.Conns())
	}
	s.detachHub()
	if s.ownHub {
		s.hub.Close()
	}
	s.settings().ver.close()
}

func newSessionPrefix() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:]) + "."
}

func (s *Server) newSessionID() string {
	return s.sessPrefix + strconv.FormatUint(s.sessSeq.Add(1), 36)
}

// hubErr passes the hub's sentinels on and turns anything else (a store that cannot be reached) into
// ErrUnavailable, logged: its text may name addresses, and clients get one line of ours.
func (s *Server) hubErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrTooManyUser), errors.Is(err, ErrNotRunning), errors.Is(err, ErrClosed),
		errors.Is(err, ErrNotModerator), errors.Is(err, ErrNoSuchWaiter), errors.Is(err, ErrNotJoined),
		errors.Is(err, ErrRejected), errors.Is(err, ErrModerator):
		return err
	}
	s.log.Warn("signaling: hub unavailable", "op", op, "err", err.Error())
	return ErrUnavailable
}

// Conns is the number of open sockets.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// ServeWS authenticates a conference socket and upgrades it. Every refusal happens before the upgrade, with a
// 400/401/403/503 status and a one-line reason. On the Socket.IO path it also serves Engine.IO's long polling
// and the upgrade of a polling session to a WebSocket (polling.go).
func (s *Server) ServeWS(ctx *fasthttp.RequestCtx) {
	if s.isSocketIOPath(ctx.Request.URI().PathOriginal()) {
		s.serveSocketIO(ctx)
		return
	}
	if !websocket.FastHTTPIsWebSocketUpgrade(ctx) {
		ctx.Response.Header.Set("Upgrade", "websocket")
		refuse(ctx, fasthttp.StatusUpgradeRequired, "websocket upgrade required")
		return
	}
	c, err := s.admit(ctx)
	if err != nil {
		s.refuseUpgrade(ctx, err)
		return
	}
	c.codec = JSONCodec{}
	s.upgrade(ctx, c)
}

// upgrade hands an admitted socket to its own goroutine: detached from fasthttp when DetachSockets was called.
func (s *Server) upgrade(ctx *fasthttp.RequestCtx, c *conn) {
	if s.detach.Load() {
		if err := s.upgradeDetached(ctx, c.run, func() { s.release(c) }); err != nil {
			s.release(c)
			s.refuseUpgrade(ctx, err)
			return
		}
	} else if err := s.settings().upgrader.Upgrade(ctx, c.run); err != nil {
		s.release(c)
		return
	}
	s.m.upgrades.Inc()
}

// refuseUpgrade answers a refused upgrade with its status and one-line reason, and tells the operator why.
func (s *Server) refuseUpgrade(ctx *fasthttp.RequestCtx, err error) {
	st := statusOf(err)
	s.m.refused(st).Inc()
	s.log.Debug("signaling: upgrade refused", "status", st, "reason", err.Error(), "ip", ctx.RemoteIP().String())
	refuse(ctx, st, err.Error())
}

// admit runs every check of the upgrade request and reserves the connection's place in the limits.
func (s *Server) admit(ctx *fasthttp.RequestCtx) (*conn, error) {
	if !s.originAllowed(ctx) {
		return nil, ErrOrigin
	}
	room, err := roomOf(ctx)
	if err != nil {
		return nil, err
	}
	g, conf, err := s.authenticate(ctx, room)
	if err != nil {
		return nil, err
	}
	c := &conn{
		s:       s,
		key:     ConfKey{Room: room, ContentID: g.ContentID},
		sess:    Session{ID: s.newSessionID(), User: g.Identity},
		expires: g.Expires,
		waiting: conf.WaitingRoom,
		ackID:   -1,
	}
	cfg := s.conf()
	c.rate = bucket{rate: cfg.MessageRate, burst: float64(cfg.MessageBurst), tokens: float64(cfg.MessageBurst)}
	c.strikes = bucket{rate: 1 / cfg.StrikeDecay.Seconds(), burst: float64(cfg.MaxStrikes), tokens: float64(cfg.MaxStrikes)}
	if err := s.reserve(c); err != nil {
		return nil, err
	}
	return c, nil
}

// authenticate finds the token for the requested conference and verifies it. Bearer first (non-browser clients,
// which cannot be hijacked cross-site), then the cookie named after the running conference's content_id, or,
// when the conference is not in the registry, the first token cookie whose `room` claim matches.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx, room string) (*Grant, Conference, error) {
	now := s.clock.Now()
	st := s.settings()
	cfg := &st.cfg
	conf, registered, err := s.hub.LookupConference(room)
	if err != nil {
		return nil, conf, s.hubErr("lookup conference", err)
	}
	if !registered {
		if cfg.RequireRegistry {
			return nil, conf, ErrNotRunning
		}
		conf = Conference{Room: room, WaitingRoom: *cfg.DefaultWaitingRoom}
	}
	if auth := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization); len(auth) > 0 {
		tok, ok := token.Bearer(auth)
		if !ok {
			return nil, conf, fmt.Errorf("%w: authorization is not a bearer token", ErrMalformed)
		}
		g, err := st.ver.verify(string(tok), now)
		if err == nil {
			err = checkGrant(g, room, conf.ContentID, registered)
		}
		if !registered {
			conf.ContentID = g.contentID()
		}
		return g, conf, err
	}
	if registered {
		want := cfg.CookiePrefix + conf.ContentID
		var v []byte
		eachCookie(ctx, func(k, val []byte) bool {
			if string(k) == want {
				v = val
				return false
			}
			return true
		})
		if len(v) == 0 {
			return nil, conf, ErrNoToken
		}
		g, err := st.ver.verify(string(v), now)
		if err == nil {
			err = checkGrant(g, room, conf.ContentID, true)
		}
		return g, conf, err
	}
	var (
		found   *Grant
		bestErr error = ErrNoToken
		tries   int
		prefix  = []byte(cfg.CookiePrefix)
	)
	eachCookie(ctx, func(k, v []byte) bool {
		if found != nil || tries >= cfg.MaxCookieTries {
			return false
		}
		if !bytes.HasPrefix(k, prefix) {
			return true
		}
		tries++
		g, err := st.ver.verify(string(v), now)
		if err == nil {
			// The cookie's name must be the token's own run: a token cannot pose as another run's cookie.
			err = checkGrant(g, room, string(k[len(prefix):]), true)
		}
		if err == nil {
			found = g
			return false
		}
		// A token for this room that failed says more than one for another room.
		if bestErr == ErrNoToken || errors.Is(bestErr, ErrWrongRoom) {
			bestErr = err
		}
		return true
	})
	if found == nil {
		return nil, conf, bestErr
	}
	conf.ContentID = found.ContentID
	return found, conf, nil
}

// eachCookie calls f for each cookie of the request until f returns false. It reads the raw headers: fasthttp's
// own cookie parsing allocates into the request context, which a hijacked socket keeps for its whole life.
func eachCookie(ctx *fasthttp.RequestCtx, f func(name, value []byte) bool) {
	for k, v := range ctx.Request.Header.AllInOrder() {
		if !bytes.EqualFold(k, []byte(fasthttp.HeaderCookie)) {
			continue
		}
		for len(v) > 0 {
			var pair []byte
			pair, v, _ = bytes.Cut(v, []byte{';'})
			name, val, ok := bytes.Cut(bytes.TrimSpace(pair), []byte{'='})
			if !ok {
				continue
			}
			if !f(bytes.TrimSpace(name), bytes.Trim(bytes.TrimSpace(val), `"`)) {
				return
			}
		}
	}
}

func (g *Grant) contentID() string {
	if g == nil {
		return ""
	}
	return g.ContentID
}

func checkGrant(g *Grant, room, contentID string, checkContent bool) error {
	if g.Room != room {
		return ErrWrongRoom
	}
	if checkContent && g.ContentID != contentID {
		return ErrWrongConference
	}
	return nil
}

// roomOf reads the conference name: the `room` query parameter (browsers cannot add headers to an upgrade) or
// the X-Room-Name header the original client sent.
func roomOf(ctx *fasthttp.RequestCtx) (string, error) {
	r := ctx.QueryArgs().Peek("room")
	if len(r) == 0 {
		r = ctx.Request.Header.Peek("X-Room-Name")
	}
	if len(r) == 0 {
		return "", ErrNoRoom
	}
	if len(r) > maxRoomNameBytes || !utf8.Valid(r) {
		return "", ErrBadRoom
	}
	for _, c := range r {
		if c < ' ' || c == 0x7f {
			return "", ErrBadRoom
		}
	}
	return string(r), nil
}

// originAllowed is the defence against cross-site WebSocket hijacking: browsers attach the token cookie to any
// site's upgrade request, but always say which site made it.
func (s *Server) originAllowed(ctx *fasthttp.RequestCtx) bool {
	st := s.settings()
	o := ctx.Request.Header.Peek("Origin")
	if len(o) == 0 {
		// Browsers leave Origin out of a same-origin GET, such as a polling request, and say so in Sec-Fetch-Site.
		return !st.cfg.RequireOrigin || string(ctx.Request.Header.Peek("Sec-Fetch-Site")) == "same-origin"
	}
	if st.anyOrig {
		return true
	}
	scheme, host, ok := splitOrigin(o)
	if !ok {
		return false
	}
	if len(st.origins) == 0 {
		return strings.EqualFold(host, string(ctx.Host()))
	}
	for _, p := range st.origins {
		if !strings.EqualFold(p.scheme, scheme) {
			continue
		}
		if p.wildcard {
			if len(host) > len(p.host) && strings.EqualFold(host[len(host)-len(p.host):], p.host) {
				return true
			}
		} else if strings.EqualFold(host, p.host) {
			return true
		}
	}
	return false
}

// splitOrigin splits `scheme://host[:port]`; anything else (a path, `null`, userinfo) is not an origin.
func splitOrigin(o []byte) (scheme, host string, ok bool) {
	i := bytes.Index(o, []byte("://"))
	if i <= 0 {
		return "", "", false
	}
	h := o[i+3:]
	if len(h) == 0 || bytes.ContainsAny(h, "/?#@ ") {
		return "", "", false
	}
	return string(o[:i]), string(h), true
}

// reserve counts the connection against this node's limits (all sockets, a conference's sockets) and, through
// the hub, against its user's limit on every node sharing the hub. The node is checked first, and again after
// the hub answered, so that a full node refuses without a hub round trip and the checks keep their order.
func (s *Server) reserve(c *conn) error {
	s.mu.Lock()
	err := s.nodeLimitLocked(c, false)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := s.hub.Reserve(c.sess, s.conf().MaxConnsPerUser); err != nil {
		return s.hubErr("reserve", err)
	}
	s.mu.Lock()
	if err = s.nodeLimitLocked(c, true); err == nil {
		s.conns[c] = struct{}{}
		s.perConf[c.key]++
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if err != nil {
		s.hub.Release(c.sess)
	}
	return err
}

// nodeLimitLocked checks the limits this node keeps; the conference's comes after the user's, checked in between.
func (s *Server) nodeLimitLocked(c *conn, conference bool) error {
	cfg := s.conf()
	switch {
	case s.closed:
		return ErrClosed
	case len(s.conns) >= cfg.MaxConns:
		return ErrTooManyConns
	case conference && s.perConf[c.key] >= cfg.MaxConnsPerConference:
		return ErrTooManyConference
	}
	return nil
}

func (s *Server) release(c *conn) {
	s.mu.Lock()
	if _, ok := s.conns[c]; !ok {
		s.mu.Unlock()
		return
	}
	delete(s.conns, c)
	if s.perConf[c.key]--; s.perConf[c.key] <= 0 {
		delete(s.perConf, c.key)
	}
	s.mu.Unlock()
	s.hub.Release(c.sess)
	s.wg.Done()
}

// refuse answers a refused upgrade. The reason is one of our sentinels' texts, never a token or claim value.
func refuse(ctx *fasthttp.RequestCtx, status int, reason string) {
	ctx.Response.Header.Set("Sec-Websocket-Version", "13")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetStatusCode(status)
	ctx.SetBodyString(fasthttp.StatusMessage(status) + ": " + reason + "\n")
}
