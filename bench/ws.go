package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/golang-jwt/jwt/v5"
)

// WSConfig is one `bench ws` scenario: Participants over Rooms conferences, each with its moderators, who admit
// the waiting room every AdmitInterval; then everyone chats at ChatRate per room for Duration.
type WSConfig struct {
	// URL is the signaling socket, ws://host:port/ws.
	URL string `json:"url"`
	// Edges are the base URLs (ws://host:port) of several edges: sockets are dealt to them round robin, the
	// moderators of each room and the participants each from the first edge, with URL's scheme and host
	// replaced; the report shows each edge's share. A participant whose moderator is on another edge is
	// admitted only if the edges share conferences (a fleet); every edge with a moderator of the room admits
	// those waiting on it.
	Edges []string `json:"edges,omitempty"`
	// Secret is the HS256 key tokens are minted with (the server's signaling.jwt.secret).
	Secret string `json:"-"`
	// Issuer is the `iss` claim; empty leaves it out.
	Issuer string `json:"issuer,omitempty"`
	// Origin is sent on every upgrade; it must be on the server's allow-list. Empty sends none.
	Origin string `json:"origin,omitempty"`
	// Participants is the number of non-moderator sockets, spread evenly over Rooms. Default 100.
	Participants int `json:"participants"`
	// Rooms is the number of conferences. Default 1.
	Rooms int `json:"rooms"`
	// Moderators per room. Default 1.
	Moderators int `json:"moderators"`
	// Duration of the chat phase, after everyone is admitted. Default 10s.
	Duration time.Duration `json:"duration"`
	// ChatRate is chat messages per second per room, each from a random member. Default 1; 0 disables chat.
	ChatRate float64 `json:"chatRate"`
	// AdmitInterval is how often a moderator admits everyone waiting; it bounds part of the admission latency.
	// Default 200ms, within the server's default message rate.
	AdmitInterval time.Duration `json:"admitInterval"`
	// Concurrency bounds dials in flight. Default 64.
	Concurrency int `json:"concurrency"`
	// MetricsURL is the server's Prometheus /metrics, read for its memory before and after connecting.
	MetricsURL string `json:"metricsUrl,omitempty"`
	// Timeout bounds one dial, the wait for all admissions and the wait for the last chat deliveries. Default 30s.
	Timeout time.Duration `json:"timeout"`
	// Interval between progress lines. Default 1s.
	Interval time.Duration `json:"-"`
	// Seed makes the chat senders reproducible.
	Seed uint64 `json:"seed"`
}

func (c *WSConfig) defaults() {
	setDef := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setDef(&c.Participants, 100)
	setDef(&c.Rooms, 1)
	setDef(&c.Moderators, 1)
	setDef(&c.Concurrency, 64)
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.AdmitInterval == 0 {
		c.AdmitInterval = 200 * time.Millisecond
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
}

// Validate checks a config after defaults and reports the first invalid field, by its name.
func (c *WSConfig) Validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "":
		return fmt.Errorf("%w: 'url' must be a ws:// or wss:// URL, got %q", ErrInvalidConfig, c.URL)
	case c.Secret == "":
		return fmt.Errorf("%w: 'secret' is required to mint tokens", ErrInvalidConfig)
	case c.Participants < 0 || c.Rooms <= 0 || c.Moderators < 0:
		return fmt.Errorf("%w: 'participants', 'rooms' and 'moderators' must not be negative, 'rooms' at least 1", ErrInvalidConfig)
	case c.Moderators == 0 && c.Participants > 0:
		return fmt.Errorf("%w: 'moderators' must be at least 1: nobody would admit the participants", ErrInvalidConfig)
	case c.ChatRate < 0 || c.Duration < 0:
		return fmt.Errorf("%w: 'chat-rate' and 'duration' must not be negative", ErrInvalidConfig)
	}
	return validateEdges(c.Edges, "ws", "wss")
}

// WSReport is RunWS's result; it is what --json writes.
type WSReport struct {
	Config  WSConfig  `json:"config"`
	Started time.Time `json:"started"`

	Sockets       int            `json:"sockets"`
	Connected     int64          `json:"connected"`
	ConnectErrors map[string]int `json:"connectErrors,omitempty"`
	// ConnectSec is the wall time from the first dial to the last socket's `connected`; ConnectRate is sockets
	// per second over it.
	ConnectSec  float64        `json:"connectSec"`
	ConnectRate float64        `json:"connectRate"`
	Connect     LatencySummary `json:"connect"`
	// Admitted counts participants granted `can_join`; Admission is from their join_waiting_room to the grant.
	Admitted  int64          `json:"admitted"`
	Admission LatencySummary `json:"admission"`
	// ChatSent messages were each delivered to every chat member of their room; FanOut is from the send to each
	// delivery, measured on one clock since senders and receivers share the process.
	ChatSent      int64          `json:"chatSent"`
	ChatDelivered int64          `json:"chatDelivered"`
	ChatExpected  int64          `json:"chatExpected"`
	FanOut        LatencySummary `json:"fanOut"`
	// Dropped counts sockets the server closed, by close code.
	Dropped map[string]int `json:"dropped,omitempty"`
	// Edges is each edge's share, for a run over several.
	Edges []WSEdgeReport `json:"edges,omitempty"`

	Memory *WSMemory `json:"serverMemory,omitempty"`
}

// WSMemory is the server's memory from its /metrics, idle before the run and with every socket open and
// admitted, before any chat.
type WSMemory struct {
	// HeapStack is go_memstats_heap_inuse_bytes + go_memstats_stack_inuse_bytes: memory the Go runtime holds for
	// live objects and goroutine stacks.
	BaselineHeapStack float64 `json:"baselineHeapStackBytes"`
	LoadedHeapStack   float64 `json:"loadedHeapStackBytes"`
	// RSS is process_resident_memory_bytes.
	BaselineRSS float64 `json:"baselineRssBytes"`
	LoadedRSS   float64 `json:"loadedRssBytes"`
	// PerConn is (loaded - baseline) / sockets.
	PerConnHeapStack float64 `json:"perConnHeapStackBytes"`
	PerConnRSS       float64 `json:"perConnRssBytes"`
}

// WSEdgeReport is one edge's share of a run over several.
type WSEdgeReport struct {
	Edge          string `json:"edge"`
	Sockets       int64  `json:"sockets"`
	Connected     int64  `json:"connected"`
	ConnectErrors int64  `json:"connectErrors"`
	Admitted      int64  `json:"admitted"`
	ChatDelivered int64  `json:"chatDelivered"`
}

// wsEdge counts one edge's share.
type wsEdge struct {
	url                                                 string // URL on this edge
	base                                                string
	sockets, connected, connErrors, admitted, delivered atomic.Int64
}

// wsRun is one run's shared state.
type wsRun struct {
	cfg    WSConfig
	dialer websocket.Dialer

	connectH, admitH, fanoutH histogram
	connected, admitted       atomic.Int64
	chatSent, delivered       atomic.Int64
	expected                  atomic.Int64
	stopping                  atomic.Bool
	chatOver                  atomic.Bool   // no more sends: expected is final
	settled                   chan struct{} // closed once, when delivered reaches the final expected
	settleOnce                sync.Once

	mu         sync.Mutex
	connErrors map[string]int
	dropped    map[string]int
}

type wsRoom struct {
	name, cid  string
	moderators []*wsClient
	admitters  []*wsClient // the first moderator on each edge: each admits those waiting on its edge
	members    []*wsClient // everyone who receives chat: moderators and admitted participants
	mu         sync.Mutex
}

type wsClient struct {
	run       *wsRun
	room      *wsRoom
	edge      *wsEdge
	moderator bool
	pending   atomic.Bool // a moderator was told someone waits: its admit loop should act
	ws        *websocket.Conn
	wmu       sync.Mutex
	joinAt    atomic.Int64 // unix nanos of join_waiting_room; the reader goroutine reads it
	connected chan struct{}
	admitted  chan struct{}
	done      chan struct{}
}

// RunWS connects the moderators, then the participants (each joining the waiting room as soon as its socket is
// open), waits until everyone is admitted, and chats for cfg.Duration. It returns early, with what it measured,
// when ctx is done.
func RunWS(ctx context.Context, cfg WSConfig, progress io.Writer) (*WSReport, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &wsRun{
		cfg:        cfg,
		connErrors: map[string]int{},
		dropped:    map[string]int{},
		settled:    make(chan struct{}),
		dialer: websocket.Dialer{
			HandshakeTimeout: cfg.Timeout,
			// Small buffers: the harness holds thousands of sockets, and frames are small.
			ReadBufferSize:  1024,
			WriteBufferSize: 1024,
			WriteBufferPool: &sync.Pool{},
		},
	}
	rep := &WSReport{Config: cfg, Started: time.Now()}
	rooms := make([]*wsRoom, cfg.Rooms)
	runID := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	for i := range rooms {
		rooms[i] = &wsRoom{name: fmt.Sprintf("bench-room-%d", i), cid: fmt.Sprintf("bench-%s-%d", runID, i)}
	}
	var mem WSMemory
	if cfg.MetricsURL != "" {
		var err error
		if mem.BaselineHeapStack, mem.BaselineRSS, err = scrapeMemory(ctx, cfg.MetricsURL); err != nil {
			return nil, err
		}
	}

	stopProgress := r.startProgress(progress)
	defer stopProgress()

	edges := []*wsEdge{{url: cfg.URL}}
	if len(cfg.Edges) > 0 {
		edges = edges[:0]
		for _, e := range cfg.Edges {
			edges = append(edges, &wsEdge{url: onEdge(cfg.URL, e), base: e})
		}
	}
	// Connect: moderators first, so that nobody waits for a moderator who is not there yet.
	var all []*wsClient
	for _, rm := range rooms {
		seen := map[*wsEdge]bool{}
		for j := 0; j < cfg.Moderators; j++ {
			c := &wsClient{run: r, room: rm, moderator: true, edge: edges[j%len(edges)]}
			rm.moderators = append(rm.moderators, c)
			rm.members = append(rm.members, c)
			if !seen[c.edge] {
				seen[c.edge] = true
				rm.admitters = append(rm.admitters, c)
			}
			all = append(all, c)
		}
	}
	nMods := len(all)
	for i := 0; i < cfg.Participants; i++ {
		all = append(all, &wsClient{run: r, room: rooms[i%len(rooms)], edge: edges[i%len(edges)]})
	}
	for _, c := range all {
		c.edge.sockets.Add(1)
	}
	rep.Sockets = len(all)
	defer func() {
		r.stopping.Store(true)
		for _, c := range all {
			if c.ws != nil {
				_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
				_ = c.ws.Close()
			}
		}
	}()

	start := time.Now()
	r.dialAll(ctx, all[:nMods])
	admitCtx, stopAdmit := context.WithCancel(ctx)
	var admitWG sync.WaitGroup
	for _, rm := range rooms {
		admitWG.Add(1)
		go func() { defer admitWG.Done(); r.admitLoop(admitCtx, rm) }()
	}
	r.dialAll(ctx, all[nMods:])
	rep.ConnectSec = time.Since(start).Seconds()
	rep.Connected = r.connected.Load()
	if rep.ConnectSec > 0 {
		rep.ConnectRate = float64(rep.Connected) / rep.ConnectSec
	}

	// Wait for admissions, bounded.
	deadline := time.NewTimer(cfg.Timeout)
	for _, c := range all[nMods:] {
		if c.ws == nil {
			continue
		}
		select {
		case <-c.admitted:
		case <-c.done:
		case <-deadline.C:
		case <-ctx.Done():
		}
	}
	deadline.Stop()
	stopAdmit()
	admitWG.Wait()

	if cfg.MetricsURL != "" && ctx.Err() == nil {
		var err error
		if mem.LoadedHeapStack, mem.LoadedRSS, err = scrapeMemory(ctx, cfg.MetricsURL); err == nil && rep.Connected > 0 {
			mem.PerConnHeapStack = (mem.LoadedHeapStack - mem.BaselineHeapStack) / float64(rep.Connected)
			mem.PerConnRSS = (mem.LoadedRSS - mem.BaselineRSS) / float64(rep.Connected)
			rep.Memory = &mem
		}
	}

	if cfg.ChatRate > 0 && cfg.Duration > 0 && ctx.Err() == nil {
		r.chat(ctx, rooms)
	}
	r.stopping.Store(true)

	rep.Connect = snap(&r.connectH)
	rep.Admitted = r.admitted.Load()
	rep.Admission = snap(&r.admitH)
	rep.ChatSent = r.chatSent.Load()
	rep.ChatDelivered = r.delivered.Load()
	rep.ChatExpected = r.expected.Load()
	rep.FanOut = snap(&r.fanoutH)
	if len(cfg.Edges) > 0 {
		for _, e := range edges {
			rep.Edges = append(rep.Edges, WSEdgeReport{Edge: e.base, Sockets: e.sockets.Load(), Connected: e.connected.Load(),
				ConnectErrors: e.connErrors.Load(), Admitted: e.admitted.Load(), ChatDelivered: e.delivered.Load()})
		}
	}
	r.mu.Lock()
	if len(r.connErrors) > 0 {
		rep.ConnectErrors = r.connErrors
	}
	if len(r.dropped) > 0 {
		rep.Dropped = r.dropped
	}
	r.mu.Unlock()
	return rep, ctx.Err()
}

func snap(h *histogram) LatencySummary {
	s := h.snapshot()
	return s.summary()
}

// dialAll opens the sockets with bounded concurrency; a participant joins the waiting room as soon as it is in.
func (r *wsRun) dialAll(ctx context.Context, cs []*wsClient) {
	sem := make(chan struct{}, r.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, c := range cs {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := c.dial(ctx); err != nil {
				c.edge.connErrors.Add(1)
				r.mu.Lock()
				r.connErrors[err.Error()]++
				r.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func (c *wsClient) dial(ctx context.Context) error {
	r := c.run
	id := fmt.Sprintf("%p", c)[2:]
	email := "p" + id + "@bench.invalid"
	if c.moderator {
		email = "m" + id + "@bench.invalid"
	}
	claims := jwt.MapClaims{
		"context": map[string]any{"user": map[string]any{"name": "bench " + id, "email": email, "id": id}},
		"aud":     "socketio",
		"room":    c.room.name, "content_id": c.room.cid, "moderator": c.moderator,
		"exp": time.Now().Add(time.Hour).Unix(),
	}
	if r.cfg.Issuer != "" {
		claims["iss"] = r.cfg.Issuer
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(r.cfg.Secret))
	if err != nil {
		return err
	}
	h := http.Header{"Cookie": {"socket_io_token_" + c.room.cid + "=" + tok}}
	if r.cfg.Origin != "" {
		h.Set("Origin", r.cfg.Origin)
	}
	c.connected, c.admitted, c.done = make(chan struct{}), make(chan struct{}), make(chan struct{})
	t0 := time.Now()
	ws, resp, err := r.dialer.DialContext(ctx, c.edge.url+"?room="+url.QueryEscape(c.room.name), h)
	if err != nil {
		if resp != nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
			_ = resp.Body.Close()
			return fmt.Errorf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
		}
		return errors.New(errorName(err))
	}
	c.ws = ws
	go c.readLoop()
	select {
	case <-c.connected:
	case <-c.done:
		return errors.New("closed before connected")
	case <-time.After(r.cfg.Timeout):
		return errors.New("no connected event")
	}
	r.connectH.Record(time.Since(t0))
	r.connected.Add(1)
	c.edge.connected.Add(1)
	if !c.moderator {
		c.joinAt.Store(time.Now().UnixNano())
		if err := c.send([]byte(`{"event":"join_waiting_room","data":null}`)); err != nil {
			return errors.New(errorName(err))
		}
	}
	return nil
}

func (c *wsClient) send(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.run.cfg.Timeout))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

var (
	evConnectedPrefix = []byte(`{"event":"connected"`)
	evChatPrefix      = []byte(`{"event":"chat_message"`)
	evJoinedPrefix    = []byte(`{"event":"waiting_participant_joined"`)
	evGrantPrefix     = []byte(`{"event":"join_room_`)
	chatStamp         = []byte(`"text":"bench:`)
	canJoin           = []byte(`"can_join":true`)
)

// readLoop handles the few events the simulation reacts to by their prefix: the server writes the event name
// first, and a thousand receivers per chat message must not each pay for a JSON decode.
func (c *wsClient) readLoop() {
	r := c.run
	defer close(c.done)
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			if !r.stopping.Load() {
				name := errorName(err)
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					name = fmt.Sprintf("close %d %s", ce.Code, ce.Text)
				}
				r.mu.Lock()
				r.dropped[name]++
				r.mu.Unlock()
			}
			return
		}
		now := time.Now()
		switch {
		case bytes.HasPrefix(b, evChatPrefix):
			i := bytes.Index(b, chatStamp)
			if i < 0 {
				continue
			}
			rest := b[i+len(chatStamp):]
			j := bytes.IndexByte(rest, '"')
			if j < 0 {
				continue
			}
			ns, err := strconv.ParseInt(string(rest[:j]), 10, 64)
			if err != nil {
				continue
			}
			r.fanoutH.Record(now.Sub(time.Unix(0, ns)))
			c.edge.delivered.Add(1)
			if n := r.delivered.Add(1); r.chatOver.Load() && n >= r.expected.Load() {
				r.settle()
			}
		case bytes.HasPrefix(b, evConnectedPrefix):
			close(c.connected)
		case bytes.HasPrefix(b, evJoinedPrefix):
			c.pending.Store(true)
		case bytes.HasPrefix(b, evGrantPrefix) && bytes.Contains(b, canJoin):
			r.admitH.Record(now.Sub(time.Unix(0, c.joinAt.Load())))
			r.admitted.Add(1)
			c.edge.admitted.Add(1)
			c.room.mu.Lock()
			c.room.members = append(c.room.members, c)
			c.room.mu.Unlock()
			close(c.admitted)
		}
	}
}

// admitLoop is a moderator on each edge pressing "admit all" whenever it is told someone waits, as often as
// AdmitInterval allows.
func (r *wsRun) admitLoop(ctx context.Context, rm *wsRoom) {
	t := time.NewTicker(r.cfg.AdmitInterval)
	defer t.Stop()
	msg := []byte(`{"event":"accept_participant","data":{"accept_everyone":true}}`)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, m := range rm.admitters {
				if m.pending.Swap(false) && m.ws != nil {
					_ = m.send(msg)
				}
			}
		}
	}
}

// chat sends ChatRate messages per second in each room from random members, stamped with the send time.
func (r *wsRun) chat(ctx context.Context, rooms []*wsRoom) {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.Duration)
	defer cancel()
	var wg sync.WaitGroup
	for i, rm := range rooms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(r.cfg.Seed, uint64(i)))
			every := time.Duration(float64(time.Second) / r.cfg.ChatRate)
			// Rooms start spread over one interval so that they do not all send in the same instant.
			next := time.Now().Add(time.Duration(rnd.Int64N(int64(every) + 1)))
			t := time.NewTimer(time.Until(next))
			defer t.Stop()
			buf := make([]byte, 0, 96)
			for {
				select {
				case <-cctx.Done():
					return
				case <-t.C:
				}
				rm.mu.Lock()
				n := len(rm.members)
				var from *wsClient
				if n > 0 {
					from = rm.members[rnd.IntN(n)]
				}
				rm.mu.Unlock()
				if from != nil {
					buf = append(buf[:0], `{"event":"chat_message","data":{"text":"bench:`...)
					buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
					buf = append(buf, `"}}`...)
					if from.send(buf) == nil {
						r.chatSent.Add(1)
						r.expected.Add(int64(n))
					}
				}
				next = next.Add(every)
				t.Reset(max(time.Until(next), 0))
			}
		}()
	}
	wg.Wait()
	// Wait until the last messages have reached every member they were sent to, or the timeout: a message
	// still missing then counts as not delivered.
	r.chatOver.Store(true)
	if r.delivered.Load() >= r.expected.Load() {
		r.settle()
	}
	t := time.NewTimer(r.cfg.Timeout)
	defer t.Stop()
	select {
	case <-r.settled:
	case <-t.C:
	case <-ctx.Done():
	}
}

func (r *wsRun) settle() { r.settleOnce.Do(func() { close(r.settled) }) }

// startProgress writes a progress line every Interval, and a last one when the returned stop is called.
func (r *wsRun) startProgress(w io.Writer) func() {
	if w == nil {
		return func() {}
	}
	start := time.Now()
	last, lastDelivered := start, int64(0)
	line := func() {
		now := time.Now()
		d := r.delivered.Load()
		fo := r.fanoutH.snapshot()
		r.mu.Lock()
		errs := 0
		for _, n := range r.connErrors {
			errs += n
		}
		for _, n := range r.dropped {
			errs += n
		}
		r.mu.Unlock()
		rate := int64(0)
		if dt := now.Sub(last).Seconds(); dt > 0 {
			rate = int64(float64(d-lastDelivered) / dt)
		}
		fmt.Fprintf(w, "ws %5.0fs  sockets %d  admitted %d  chat sent %d  delivered/s %d  fan-out p99 %s  errors %d\n",
			now.Sub(start).Seconds(), r.connected.Load(), r.admitted.Load(), r.chatSent.Load(),
			rate, fmtMs(ms(fo.quantile(0.99))), errs)
		last, lastDelivered = now, d
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				line()
				return
			case <-t.C:
				line()
			}
		}
	}()
	return func() { close(stop); <-done }
}

// scrapeMemory reads the Go heap and stacks in use and the resident set from a Prometheus text page.
func scrapeMemory(ctx context.Context, u string) (heapStack, rss float64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("metrics url: %w", err)
	}
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return 0, 0, errors.New("metrics: status 401: the edge has an admin.token; give it as the password in the URL, http://ops:TOKEN@host/metrics")
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("metrics: status %d", resp.StatusCode)
	}
	vals := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, v, ok := strings.Cut(line, " ")
		switch name {
		case "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "process_resident_memory_bytes":
			if !ok {
				continue
			}
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				vals[name] = f
			}
		}
	}
	if _, ok := vals["go_memstats_heap_inuse_bytes"]; !ok {
		return 0, 0, errors.New("metrics: no go_memstats_heap_inuse_bytes; expose Go metrics on this URL")
	}
	return vals["go_memstats_heap_inuse_bytes"] + vals["go_memstats_stack_inuse_bytes"], vals["process_resident_memory_bytes"], nil
}

// WriteSummary prints the report as a small table.
func (rep *WSReport) WriteSummary(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "sockets      %d opened of %d in %.2fs (%.0f/s), connect p50 %s p99 %s\n",
		rep.Connected, rep.Sockets, rep.ConnectSec, rep.ConnectRate, fmtMs(rep.Connect.P50Ms), fmtMs(rep.Connect.P99Ms))
	fmt.Fprintf(&b, "admission    %d admitted, p50 %s p90 %s p99 %s max %s\n",
		rep.Admitted, fmtMs(rep.Admission.P50Ms), fmtMs(rep.Admission.P90Ms), fmtMs(rep.Admission.P99Ms), fmtMs(rep.Admission.MaxMs))
	fmt.Fprintf(&b, "chat fan-out %d sent, %d of %d deliveries, p50 %s p90 %s p99 %s max %s\n",
		rep.ChatSent, rep.ChatDelivered, rep.ChatExpected, fmtMs(rep.FanOut.P50Ms), fmtMs(rep.FanOut.P90Ms), fmtMs(rep.FanOut.P99Ms), fmtMs(rep.FanOut.MaxMs))
	for _, e := range rep.Edges {
		fmt.Fprintf(&b, "edge %s: %d sockets, %d connected, %d connect errors, %d admitted, %d chat deliveries\n",
			e.Edge, e.Sockets, e.Connected, e.ConnectErrors, e.Admitted, e.ChatDelivered)
	}
	if m := rep.Memory; m != nil {
		fmt.Fprintf(&b, "server mem   heap+stack %.1f -> %.1f MiB (%.1f KB/socket), rss %.1f -> %.1f MiB (%.1f KB/socket)\n",
			m.BaselineHeapStack/(1<<20), m.LoadedHeapStack/(1<<20), m.PerConnHeapStack/1000,
			m.BaselineRSS/(1<<20), m.LoadedRSS/(1<<20), m.PerConnRSS/1000)
	}
	for k, n := range rep.ConnectErrors {
		fmt.Fprintf(&b, "connect error %dx %s\n", n, k)
	}
	for k, n := range rep.Dropped {
		fmt.Fprintf(&b, "dropped      %dx %s\n", n, k)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the report to path.
func (rep *WSReport) WriteJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
