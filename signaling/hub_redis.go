package signaling

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/hlsedge/hlsedge/internal/fleet"
)

// RedisHub is the Hub of a fleet: the nodes of a conference share its registry, waiting lists, decisions, chat
// history and per-user connection counts in Redis (internal/fleet), and reach each other's sockets through one
// pub/sub channel per conference run. Centrifuge's split: each node keeps its own sockets and which of them are
// waiting (presence), Redis keeps what every node must agree on, and the channel carries deliveries.
//
// A node applies what it decides to its own sockets at once and publishes it for the others, which apply it when
// it arrives; deliveries addressed to one session go straight to it, since sessions never move between nodes.
// Each node holds leases in Redis on its sockets and waiting participants and renews them (hubLease), so that the
// sockets and places of a node that died lapse instead of staying forever.
//
// When Redis is unreachable the hub keeps serving each node's own sockets from what the node knows: new sockets
// are counted against the per-user limit on this node only, moderators see and decide on the participants
// waiting on their own node, chat reaches the members on the same node, and the registry is the copy last seen.
// hlsedge_signaling_hub_local_total counts the operations served that way. When Redis returns (fleet OnResync),
// the node settles the decisions it took, re-announces its sockets and waiting participants, appends the chat it
// carried, and sends its moderators the fleet's waiting list again. Events other nodes published meanwhile are
// lost; the state they changed is not.
type RedisHub struct {
	fc             *fleet.Client
	log            *slog.Logger
	clock          clock
	holder         string // this hub in Redis leases: the node name and a random suffix, unique fleet-wide
	grace          time.Duration
	history        int
	defaultWaiting bool
	m              *redisHubMetrics

	rcv receivers

	mu     sync.Mutex
	confs  map[ConfKey]*rconf
	cache  map[string]Conference // the registry as last seen, served while Redis is unreachable
	cached bool                  // cache holds a whole registry at least once
	res    map[string]string     // reserved session ID -> user fingerprint
	users  map[string]int        // reservations on this node per user fingerprint, for counting locally
	closed bool
	tick   timer

	inbox   chan inbound // other nodes' events, in channel order, for the dispatcher
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	regSub  *fleet.Subscription
	unhook  func()
	syncMu  sync.Mutex // one refresh at a time
	resyncs resyncCounter
	// stale is set when events were dropped: the next renewal refreshes everything, as after an outage.
	stale atomic.Bool
}

// hubLease is how long a node's hold on a socket or a waiting participant lasts in Redis unless renewed; nodes
// renew every third of it. A node that dies leaks its sockets in the per-user counts and its waiting
// participants for this long at most.
const hubLease = 30 * time.Second

const (
	// inboxSize bounds the events received but not yet applied. A node that cannot keep up drops (and counts)
	// events rather than growing without bound or stalling the subscription every conference shares; its next
	// renewal then re-syncs it.
	inboxSize = 4096
	// liveWait bounds how long the first socket of a conference on a node waits for its channel subscription,
	// so that it misses nothing published after it connected.
	liveWait = 2 * time.Second
	// refreshWorkers bounds the connection leases renewed at once.
	refreshWorkers = 16
)

type inbound struct {
	k  ConfKey
	ev *wireEvent
}

// rconf is what a node keeps of one conference run it has sockets in.
type rconf struct {
	h    *RedisHub
	key  ConfKey
	room *fleet.Room
	sub  *fleet.Subscription

	mu      sync.Mutex
	dead    bool // removed from RedisHub.confs; callers look it up again
	ended   bool // the run was ended or replaced: its Redis state is gone, so it is not written again
	members map[string]*rmember
	// waiters are the participants waiting with a socket on this node, or whose place it keeps through the
	// grace period. While Redis is unreachable they are the waiting list this node's moderators see.
	waiters map[string]*rwaiter
	// decided caches the run's decisions this node learnt: decisions are final, so a cached one is never stale.
	decided map[string]decision
	// Taken while Redis was unreachable, written when it returns.
	pendingDec  map[string]decision
	pendingChat [][]byte
	// history is a ring of the chat this node delivered, the history joiners get while Redis is unreachable.
	history []*Message
	histPos int
}

type rmember struct {
	role  Role
	key   string // participantKey
	ident Identity
	w     *rwaiter
}

type rwaiter struct {
	key        string
	ident      Identity
	joinedAt   time.Time
	sessions   []string // on this node
	grace      timer
	graceUntil time.Time
}

// NewRedisHub returns a hub on the fleet member fc. cfg is the signaling config of the servers that will use
// it, for its reconnect grace, chat history and default waiting room. ms receives the hub's metrics and may be
// nil. The caller closes the hub after the servers, and fc after the hub.
func NewRedisHub(fc *fleet.Client, cfg Config, log *slog.Logger, ms *metrics.Set) *RedisHub {
	return newRedisHub(fc, cfg, log, ms, systemClock{})
}

func newRedisHub(fc *fleet.Client, cfg Config, log *slog.Logger, ms *metrics.Set, clk clock) *RedisHub {
	cfg.SetDefaults()
	if log == nil {
		log = slog.Default()
	}
	if ms == nil {
		ms = metrics.NewSet()
	}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	h := &RedisHub{
		fc:             fc,
		log:            log.With("component", "signaling-hub"),
		clock:          clk,
		holder:         fc.Node() + "." + hex.EncodeToString(suffix[:]),
		grace:          cfg.ReconnectGrace,
		history:        max(cfg.ChatHistory, 0),
		defaultWaiting: *cfg.DefaultWaitingRoom,
		confs:          map[ConfKey]*rconf{},
		cache:          map[string]Conference{},
		res:            map[string]string{},
		users:          map[string]int{},
		inbox:          make(chan inbound, inboxSize),
	}
	h.m = newRedisHubMetrics(ms, h)
	h.resyncs.changed = make(chan struct{})
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.regSub = fc.SubscribeConferences(h.registryEvent)
	h.wg.Add(1)
	go h.dispatch()
	h.mu.Lock()
	h.tick = clk.AfterFunc(hubLease/3, h.renew)
	h.mu.Unlock()
	// The first resync loads the registry. Waiting for it when Redis is up makes a new hub's state complete
	// before its first socket; when Redis is down it runs on its return.
	n, ch := h.resyncs.get()
	h.unhook = fc.OnResync(h.resync)
	if n == 0 && !fc.Degraded() {
		select {
		case <-ch:
		case <-time.After(liveWait):
		}
	}
	return h
}

// receivers are the nodes attached to a hub, copied on change so that a fan-out reads them without a lock.
type receivers struct {
	mu   sync.Mutex
	list atomic.Pointer[[]Receiver]
}

func (rs *receivers) attach(r Receiver) func() {
	rs.mu.Lock()
	rs.storeLocked(append(rs.load(), r))
	rs.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			rs.mu.Lock()
			defer rs.mu.Unlock()
			rs.storeLocked(slices.DeleteFunc(rs.load(), func(x Receiver) bool { return x == r }))
		})
	}
}

func (rs *receivers) load() []Receiver {
	if p := rs.list.Load(); p != nil {
		return slices.Clone(*p)
	}
	return nil
}

func (rs *receivers) storeLocked(l []Receiver) { rs.list.Store(&l) }

func (rs *receivers) deliver(d *Delivery) {
	if p := rs.list.Load(); p != nil {
		for _, r := range *p {
			r.Deliver(d)
		}
	}
}

// resyncCounter tells tests when a resync finished, without polling.
type resyncCounter struct {
	mu      sync.Mutex
	n       uint64
	changed chan struct{}
}

func (c *resyncCounter) get() (uint64, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, c.changed
}

func (c *resyncCounter) inc() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	close(c.changed)
	c.changed = make(chan struct{})
}

// Attach implements Hub.
func (h *RedisHub) Attach(r Receiver) func() { return h.rcv.attach(r) }

// Close implements Hub. It stops the hub's timers, goroutines and subscriptions; the leases it held lapse.
func (h *RedisHub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	h.tick.Stop()
	confs := make([]*rconf, 0, len(h.confs))
	for _, lc := range h.confs {
		confs = append(confs, lc)
	}
	h.mu.Unlock()
	h.unhook()
	h.regSub.Close()
	for _, lc := range confs {
		lc.mu.Lock()
		for _, w := range lc.waiters {
			if w.grace != nil {
				w.grace.Stop()
			}
		}
		lc.mu.Unlock()
		lc.sub.Close()
	}
	h.cancel()
	h.wg.Wait()
}

// unavailable reports whether err means Redis could not be reached, so that the caller serves locally.
func (h *RedisHub) unavailable(err error) bool {
	if errors.Is(err, fleet.ErrUnavailable) {
		h.m.local.Inc()
		return true
	}
	return false
}

// The registry.

// PutConference implements Hub.
func (h *RedisHub) PutConference(c Conference) (int, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return 0, err
	}
	prevData, err := h.fc.PutConference(h.ctx, c.Room, data)
	if err != nil {
		return 0, err
	}
	h.mu.Lock()
	h.cache[c.Room] = c
	h.mu.Unlock()
	if prevData == nil {
		return 0, nil
	}
	prev, err := decodeConference(prevData)
	if err != nil {
		h.badEntry("registry", err)
		return 0, nil
	}
	switch {
	case prev.ContentID != c.ContentID:
		return h.endRun(ConfKey{prev.Room, prev.ContentID}, conferenceReplacedReason), nil
	case prev.WaitingRoom && !c.WaitingRoom:
		// Turning the waiting room off admits everyone in it, as Jitsi's lobby does.
		if _, err := h.accept(ConfKey{c.Room, c.ContentID}, "", true); err != nil && !errors.Is(err, ErrNoSuchWaiter) {
			h.log.Warn("admitting the waiting room", "room", c.Room, "err", err)
		}
	}
	return 0, nil
}

// DeleteConference implements Hub.
func (h *RedisHub) DeleteConference(room string) (Conference, int, error) {
	data, ok, err := h.fc.DeleteConference(h.ctx, room)
	if err != nil {
		return Conference{}, 0, err
	}
	h.mu.Lock()
	delete(h.cache, room)
	h.mu.Unlock()
	if !ok {
		return Conference{}, 0, ErrNotRunning
	}
	c, err := decodeConference(data)
	if err != nil {
		h.badEntry("registry", err)
		return Conference{Room: room}, 0, nil
	}
	return c, h.endRun(ConfKey{c.Room, c.ContentID}, conferenceEndedReason), nil
}

// endRun closes the run's sockets on every node, forgets its shared state and returns how many sockets it had.
func (h *RedisHub) endRun(k ConfKey, reason string) int {
	lc := h.join(k, false)
	room := h.fc.Room(k.Room, k.ContentID, 0)
	if lc != nil {
		room = lc.room
	}
	n, err := room.Members(h.ctx, h.clock.Now())
	if err != nil {
		h.log.Warn("counting a conference's sockets", "room", k.Room, "err", err)
	}
	end := &wireDelivery{To: ToAll, End: reason}
	if lc != nil {
		lc.sendLocked(end)
		h.unlockConf(lc)
	} else {
		h.publish(room, end)
	}
	if err := room.Drop(h.ctx); err != nil {
		h.log.Warn("dropping a conference's state", "room", k.Room, "err", err)
	}
	return n
}

// LookupConference implements Hub.
func (h *RedisHub) LookupConference(room string) (Conference, bool, error) {
	data, ok, err := h.fc.LookupConference(h.ctx, room)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		if h.cached && h.unavailable(err) {
			c, ok := h.cache[room]
			return c, ok, nil
		}
		return Conference{}, false, err
	}
	if !ok {
		delete(h.cache, room)
		return Conference{}, false, nil
	}
	c, err := decodeConference(data)
	if err != nil {
		h.badEntry("registry", err)
		return Conference{}, false, err
	}
	h.cache[room] = c
	return c, true, nil
}

// Conferences implements Hub.
func (h *RedisHub) Conferences() ([]Conference, error) {
	all, err := h.fc.Conferences(h.ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Conference, 0, len(all))
	for _, data := range all {
		c, err := decodeConference(data)
		if err != nil {
			h.badEntry("registry", err)
			continue
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Room < out[j].Room })
	return out, nil
}

// registryEvent keeps the cache current. It runs on the subscription's reader: a map write, no waiting.
func (h *RedisHub) registryEvent(ev fleet.ConferenceEvent) {
	var c Conference
	if !ev.Deleted {
		var err error
		if c, err = decodeConference(ev.Data); err != nil {
			h.badEntry("registry event", err)
			return
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if ev.Deleted {
		delete(h.cache, ev.Room)
	} else {
		h.cache[ev.Room] = c
	}
}

// waitingRoom reports whether a run has a waiting room: the registered run's setting, else the default.
func (h *RedisHub) waitingRoom(k ConfKey) bool {
	c, ok, err := h.LookupConference(k.Room)
	if err != nil {
		h.log.Warn("looking up a conference", "room", k.Room, "err", err)
	}
	if ok && c.ContentID == k.ContentID {
		return c.WaitingRoom
	}
	return h.defaultWaiting
}

// Per-user connection limits.

// Reserve implements Hub.
func (h *RedisHub) Reserve(s Session, perUser int) error {
	user := participantKey(&s.User)
	a, err := h.fc.AcquireConn(h.ctx, user, s.ID, perUser, hubLease, h.clock.Now())
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err == nil && !a.Admitted:
		return ErrTooManyUser
	case err == nil:
	case h.unavailable(err):
		// Counted on this node only until Redis returns; renew then counts the socket fleet-wide.
		if h.users[user] >= perUser {
			return ErrTooManyUser
		}
	default:
		return err
	}
	h.res[s.ID] = user
	h.users[user]++
	return nil
}

// Release implements Hub.
func (h *RedisHub) Release(s Session) {
	h.mu.Lock()
	user, ok := h.res[s.ID]
	if ok {
		delete(h.res, s.ID)
		if h.users[user]--; h.users[user] <= 0 {
			delete(h.users, user)
		}
	}
	h.mu.Unlock()
	if !ok {
		return
	}
	if err := h.fc.ReleaseConn(h.ctx, user, s.ID); err != nil {
		h.log.Debug("releasing a connection; its lease lapses instead", "err", err)
	}
}

// Conference state.

// join returns the run's local state locked, creating it (and subscribing to its channel) when create is set;
// nil when it does not exist. Whoever creates it waits until the subscription is live, so that nothing
// published after its socket connected is missed, unless Redis is unreachable.
func (h *RedisHub) join(k ConfKey, create bool) *rconf {
	for {
		h.mu.Lock()
		lc := h.confs[k]
		if lc == nil {
			if !create || h.closed {
				h.mu.Unlock()
				return nil
			}
			lc = &rconf{
				h:          h,
				key:        k,
				room:       h.fc.Room(k.Room, k.ContentID, 0),
				members:    map[string]*rmember{},
				waiters:    map[string]*rwaiter{},
				decided:    map[string]decision{},
				pendingDec: map[string]decision{},
			}
			lc.sub = lc.room.Subscribe(h.handler(k))
			h.confs[k] = lc
		}
		h.mu.Unlock()
		if create && !h.fc.Degraded() {
			select {
			case <-lc.sub.Ready():
			case <-time.After(liveWait):
				h.log.Warn("conference subscription not live yet", "room", k.Room)
			}
		}
		lc.mu.Lock()
		if !lc.dead {
			return lc
		}
		lc.mu.Unlock()
	}
}

// unlockConf releases a run and forgets it once nobody is left in it on this node and nothing waits to be
// written; its channel is unsubscribed.
//
// Locks are taken in the order rconf.mu, then RedisHub.mu, and RedisHub.mu is never held while waiting for
// anything else: the subscription's reader takes it to update the registry cache, and must not wait for an
// operation's Redis round trip.
func (h *RedisHub) unlockConf(lc *rconf) {
	drop := lc.emptyLocked() && !lc.dead
	if drop {
		lc.dead = true
		h.mu.Lock()
		delete(h.confs, lc.key)
		h.mu.Unlock()
	}
	lc.mu.Unlock()
	if drop {
		lc.sub.Close()
	}
}

func (lc *rconf) emptyLocked() bool {
	return len(lc.members) == 0 && len(lc.waiters) == 0 && len(lc.pendingDec) == 0 && len(lc.pendingChat) == 0
}

// Connect implements Hub.
func (h *RedisHub) Connect(k ConfKey, s Session) error {
	lc := h.join(k, true)
	if lc == nil {
		return ErrClosed
	}
	defer h.unlockConf(lc)
	m := &rmember{role: RoleNone, key: participantKey(&s.User), ident: s.User}
	lc.members[s.ID] = m
	if !lc.ended {
		if _, err := lc.room.Hold(h.ctx, h.holder, h.clock.Now().Add(hubLease), []string{s.ID}, nil); err != nil && !h.unavailable(err) {
			h.log.Warn("announcing a socket", "room", k.Room, "err", err)
		}
	}
	if s.User.Moderator {
		m.role = RoleModerator
		ids := []string{s.ID}
		lc.toSessions(ids, RoleModerator, newMessage(evWaitingRoomList, map[string]any{"participants": lc.listLocked()}))
		lc.sendHistoryLocked(ids, 0)
	}
	return nil
}

// Disconnect implements Hub.
func (h *RedisHub) Disconnect(k ConfKey, s Session) {
	lc := h.join(k, false)
	if lc == nil {
		return
	}
	defer h.unlockConf(lc)
	m := lc.members[s.ID]
	if m == nil {
		return
	}
	delete(lc.members, s.ID)
	if !lc.ended {
		if err := lc.room.RemoveMember(h.ctx, s.ID); err != nil && !h.unavailable(err) {
			h.log.Debug("forgetting a socket; its lease lapses instead", "err", err)
		}
	}
	w := m.w
	if m.role != RoleWaiting || w == nil {
		return
	}
	w.sessions = removeString(w.sessions, s.ID)
	if len(w.sessions) > 0 {
		return
	}
	if h.grace <= 0 {
		lc.waiterGoneLocked(w)
		return
	}
	// Keep the place: a reconnect inside the grace period, on any node, finds it again. Every node sweeps the
	// places no node holds any longer; this one's timer makes its own sweep punctual.
	w.graceUntil = h.clock.Now().Add(h.grace)
	if !lc.ended {
		if err := lc.room.Release(h.ctx, h.holder, w.key, w.graceUntil); err != nil && !h.unavailable(err) {
			h.log.Warn("releasing a waiting participant", "room", k.Room, "err", err)
		}
	}
	w.grace = h.clock.AfterFunc(h.grace, func() {
		lc := h.join(k, false)
		if lc == nil {
			return
		}
		defer h.unlockConf(lc)
		if lc.waiters[w.key] == w && len(w.sessions) == 0 {
			lc.waiterGoneLocked(w)
		}
	})
}

// waiterGoneLocked forgets a waiter with no socket left here and, unless another node still holds them, takes
// them out of the waiting list and tells the moderators.
func (lc *rconf) waiterGoneLocked(w *rwaiter) {
	h := lc.h
	lc.dropWaiterLocked(w)
	left := newDelivery(ToModerators, newMessage(evWaitingLeft, map[string]any{"email": w.ident.Email, "reason": leftDisconnected}))
	left.Gone = w.key
	if lc.ended {
		return
	}
	now := h.clock.Now()
	err := lc.room.Release(h.ctx, h.holder, w.key, now)
	var out []fleet.Entry
	if err == nil {
		out, err = lc.room.Sweep(h.ctx, now, []string{w.key})
	}
	switch {
	case err == nil:
		if len(out) > 0 {
			lc.sendLocked(left)
		}
	case h.unavailable(err):
		// Only this node's moderators can be told; the fleet's sweep takes them out when Redis returns.
		lc.applyLocked(left)
	default:
		h.log.Warn("removing a waiting participant", "room", lc.key.Room, "err", err)
	}
}

func (lc *rconf) dropWaiterLocked(w *rwaiter) {
	if w.grace != nil {
		w.grace.Stop()
		w.grace = nil
	}
	if lc.waiters[w.key] == w {
		delete(lc.waiters, w.key)
	}
}

// JoinWaiting implements Hub.
func (h *RedisHub) JoinWaiting(k ConfKey, s Session) error {
	if s.User.Moderator {
		return ErrModerator
	}
	waitingRoom := h.waitingRoom(k)
	lc := h.join(k, true)
	if lc == nil {
		return ErrNotRunning
	}
	defer h.unlockConf(lc)
	m := lc.members[s.ID]
	if m == nil {
		m = &rmember{role: RoleNone, key: participantKey(&s.User), ident: s.User}
		lc.members[s.ID] = m
	}
	ids := []string{s.ID}
	switch m.role {
	case RoleWaiting:
		lc.toSessions(ids, 0, newMessage(evJoinWaitingResponse, map[string]any{"success": true, "waiting": true}))
		return nil
	case RoleAdmitted:
		lc.grantLocked(ids, 0)
		return nil
	case RoleRejected:
		return ErrRejected
	}
	if d, ok := lc.decided[m.key]; ok {
		lc.applyDecisionLocked(m, ids, d)
		return nil
	}
	now := h.clock.Now()
	if !waitingRoom {
		d := decision{admitted: true}
		if !lc.ended {
			// Settled, so that the participant's other sockets and reconnects are admitted on every node.
			b, err := lc.room.Settle(h.ctx, m.key, encodeDecision(d))
			switch {
			case err == nil:
				if d, err = decodeDecision(b); err != nil {
					h.badEntry("decision", err)
					d = decision{admitted: true}
				}
			case h.unavailable(err):
				lc.pendingDec[m.key] = d
			default:
				return err
			}
		}
		lc.decided[m.key] = d
		lc.applyDecisionLocked(m, ids, d)
		return nil
	}
	w := lc.waiters[m.key]
	fresh := w == nil
	if fresh {
		w = &rwaiter{key: m.key, ident: s.User, joinedAt: now}
	}
	announce := fresh
	if !lc.ended {
		held, err := lc.room.Hold(h.ctx, h.holder, now.Add(hubLease), nil, []fleet.Entry{{Key: w.key, Data: w.entry()}})
		switch {
		case err == nil && len(held.Decided) > 0:
			// Decided on another node while this participant was away: honour it.
			d, err := decodeDecision(held.Decided[0].Data)
			if err != nil {
				h.badEntry("decision", err)
				return err
			}
			lc.applyLocked(decisionDelivery(k.Room, m.key, d))
			lc.applyDecisionLocked(m, ids, d)
			return nil
		case err == nil:
			announce = len(held.Added) > 0
		case h.unavailable(err):
		default:
			return err
		}
	}
	if fresh {
		lc.waiters[w.key] = w
	}
	if w.grace != nil {
		w.grace.Stop()
		w.grace = nil
	}
	w.sessions = append(w.sessions, s.ID)
	m.role, m.w = RoleWaiting, w
	if announce {
		joined := newDelivery(ToModerators, newMessage(evWaitingJoined, map[string]any{"participant": w.participant()}))
		lc.sendLocked(joined)
	}
	lc.toSessions(ids, RoleWaiting, newMessage(evJoinWaitingResponse, map[string]any{"success": true, "waiting": true}))
	lc.sendHistoryLocked(ids, 0)
	return nil
}

// LeaveWaiting implements Hub.
func (h *RedisHub) LeaveWaiting(k ConfKey, s Session) error {
	lc := h.join(k, false)
	if lc == nil {
		return ErrNotJoined
	}
	defer h.unlockConf(lc)
	m := lc.members[s.ID]
	if m == nil || m.role != RoleWaiting || m.w == nil {
		return ErrNotJoined
	}
	w := m.w
	listed := true
	if !lc.ended {
		ok, err := lc.room.Unwait(h.ctx, w.key, h.clock.Now())
		switch {
		case err == nil:
			listed = ok
		case h.unavailable(err):
		default:
			return err
		}
	}
	// Out of the waiting room is out of the chat, on every node.
	ds := []*wireDelivery{{To: toWaiter, Waiter: w.key, Role: RoleNone}}
	if listed {
		left := newDelivery(ToModerators, newMessage(evWaitingLeft, map[string]any{"email": w.ident.Email, "reason": leftLeft}))
		left.Gone = w.key
		ds = append(ds, left)
	}
	lc.sendLocked(ds...)
	return nil
}

// Accept implements Hub.
func (h *RedisHub) Accept(k ConfKey, by Session, email string, everyone bool) (int, error) {
	if !by.User.Moderator {
		return 0, ErrNotModerator
	}
	return h.accept(k, email, everyone)
}

func (h *RedisHub) accept(k ConfKey, email string, everyone bool) (int, error) {
	lc := h.join(k, true)
	if lc == nil {
		return 0, ErrNoSuchWaiter
	}
	defer h.unlockConf(lc)
	admit := decision{admitted: true}
	picked, err := lc.decideLocked(email, everyone, admit)
	if err != nil {
		return 0, err
	}
	ds := make([]*wireDelivery, 0, 2*len(picked))
	for _, p := range picked {
		ds = append(ds, decisionDelivery(k.Room, p.key, admit), leftDelivery(p.email, leftAdmitted, p.key))
	}
	if len(ds) > 0 {
		lc.sendLocked(ds...)
	}
	return len(picked), nil
}

// Reject implements Hub.
func (h *RedisHub) Reject(k ConfKey, by Session, email, reason string) error {
	if !by.User.Moderator {
		return ErrNotModerator
	}
	lc := h.join(k, true)
	if lc == nil {
		return ErrNoSuchWaiter
	}
	defer h.unlockConf(lc)
	if reason == "" {
		reason = defaultRejectReason
	}
	d := decision{reason: reason}
	picked, err := lc.decideLocked(email, false, d)
	if err != nil {
		return err
	}
	lc.sendLocked(decisionDelivery(k.Room, picked[0].key, d), leftDelivery(picked[0].email, leftRejected, picked[0].key))
	return nil
}

type pickedWaiter struct{ key, email string }

// decideLocked records d on the waiting participants a moderator picked, one by email (the earliest to join if
// several match) or everyone, and returns those it was recorded on. It reads and decides on the fleet's list,
// where another moderator may have decided on some first; while Redis is unreachable, on this node's list, and
// the decisions are settled in Redis when it returns.
func (lc *rconf) decideLocked(email string, everyone bool, d decision) ([]pickedWaiter, error) {
	h := lc.h
	list, local, err := lc.waitingLocked()
	if err != nil {
		return nil, err
	}
	var picked []pickedWaiter
	for _, e := range list {
		if everyone || strings.EqualFold(e.p.Email, email) {
			picked = append(picked, pickedWaiter{e.key, e.p.Email})
			if !everyone {
				break
			}
		}
	}
	if len(picked) == 0 {
		if everyone {
			return nil, nil
		}
		return nil, ErrNoSuchWaiter
	}
	if !local && !lc.ended {
		keys := make([]string, len(picked))
		for i, p := range picked {
			keys[i] = p.key
		}
		moved, err := lc.room.Decide(h.ctx, keys, encodeDecision(d))
		switch {
		case err == nil:
			picked = slices.DeleteFunc(picked, func(p pickedWaiter) bool { return !slices.Contains(moved, p.key) })
			if len(picked) == 0 && !everyone {
				return nil, ErrNoSuchWaiter // another moderator was first
			}
			return picked, nil
		case !h.unavailable(err):
			return nil, err
		}
	}
	if !lc.ended {
		for _, p := range picked {
			lc.pendingDec[p.key] = d
		}
	}
	return picked, nil
}

// Chat implements Hub.
func (h *RedisHub) Chat(k ConfKey, from Session, text string, at time.Time) error {
	lc := h.join(k, false)
	if lc == nil {
		return ErrNotJoined
	}
	defer h.unlockConf(lc)
	m := lc.members[from.ID]
	if m == nil || !m.role.chats() {
		return ErrNotJoined
	}
	id := &from.User
	msg := newMessage(evChatMessage, ChatMessage{
		From: ChatFrom{Name: id.Name, Email: id.Email, Avatar: id.Avatar, Moderator: id.Moderator},
		Text: text,
		TS:   at.UnixMilli(),
	})
	// Fast path: one delivery to this node's members, and one round trip that publishes the message for the
	// others and keeps it in the history.
	d := newDelivery(ToChat, msg)
	if h.history == 0 || lc.ended {
		lc.sendLocked(d)
		return nil
	}
	lc.applyLocked(d)
	payload, err := json.Marshal(&wireEvent{From: h.holder, D: []*wireDelivery{d}})
	if err == nil {
		err = lc.room.PublishChat(h.ctx, payload, msg.Data, h.history)
	}
	if err == nil || !h.unavailable(err) {
		if err != nil {
			h.log.Warn("publishing chat", "room", k.Room, "err", err)
		}
		return nil
	}
	// Only this node's members have it: the history gets it when Redis returns.
	lc.pendingChat = append(lc.pendingChat, msg.Data)
	if len(lc.pendingChat) > h.history {
		lc.pendingChat = lc.pendingChat[len(lc.pendingChat)-h.history:]
	}
	return nil
}

// Deliveries.

// sendLocked applies ds to this node's sockets, then publishes them for the other nodes. When the publish fails
// only this node's members got them: the other nodes catch up on the state at their resync.
func (lc *rconf) sendLocked(ds ...*wireDelivery) {
	for _, d := range ds {
		lc.applyLocked(d)
	}
	lc.h.publish(lc.room, ds...)
}

func (h *RedisHub) publish(room *fleet.Room, ds ...*wireDelivery) {
	for len(ds) > 0 {
		n := min(len(ds), maxWireDeliveries)
		p, err := json.Marshal(&wireEvent{From: h.holder, D: ds[:n]})
		if err != nil {
			h.log.Error("encoding a hub event", "err", err)
			return
		}
		if err := room.Publish(h.ctx, p); err != nil && !h.unavailable(err) {
			h.log.Warn("publishing a hub event", "err", err)
		}
		ds = ds[n:]
	}
}

// applyLocked hands one delivery to this node's sockets and applies the state change that goes with it. Local
// operations and other nodes' events take the same path, so every node ends in the same state.
func (lc *rconf) applyLocked(d *wireDelivery) {
	msg := d.message()
	if d.Decided != nil && d.Waiter != "" {
		lc.decided[d.Waiter] = d.Decided.decision()
	}
	if d.To == toWaiter {
		w := lc.waiters[d.Waiter]
		if w == nil {
			return
		}
		ids := slices.Clone(w.sessions)
		if d.Role != 0 && d.Role != RoleWaiting {
			for _, id := range ids {
				if m := lc.members[id]; m != nil {
					m.role, m.w = d.Role, nil
				}
			}
			lc.dropWaiterLocked(w)
		}
		if len(ids) > 0 {
			lc.h.rcv.deliver(&Delivery{Conf: lc.key, To: ToSessions, Sessions: ids, Role: d.Role, Msg: msg, End: d.End})
		}
		return
	}
	if d.Gone != "" {
		if w := lc.waiters[d.Gone]; w != nil && len(w.sessions) == 0 {
			lc.dropWaiterLocked(w)
		}
	}
	if d.End != "" && d.To == ToAll {
		lc.ended = true
	}
	if msg != nil && msg.Event == evChatMessage {
		lc.rememberLocked(msg)
	}
	lc.h.rcv.deliver(&Delivery{Conf: lc.key, To: d.To, Role: d.Role, Msg: msg, End: d.End})
}

// toSessions delivers to sessions of this node: they never are anywhere else.
func (lc *rconf) toSessions(ids []string, role Role, msg *Message) {
	lc.h.rcv.deliver(&Delivery{Conf: lc.key, To: ToSessions, Sessions: ids, Role: role, Msg: msg})
}

func (lc *rconf) grantLocked(ids []string, role Role) {
	lc.toSessions(ids, role, grantMessage(lc.key.Room, decision{admitted: true}))
}

// applyDecisionLocked answers a session whose participant was decided on already.
func (lc *rconf) applyDecisionLocked(m *rmember, ids []string, d decision) {
	if !d.admitted {
		m.role = RoleRejected
		lc.toSessions(ids, RoleRejected, grantMessage(lc.key.Room, d))
		return
	}
	m.role = RoleAdmitted
	lc.sendHistoryLocked(ids, RoleAdmitted)
	lc.grantLocked(ids, 0)
}

func grantMessage(room string, d decision) *Message {
	if d.admitted {
		return newMessage(joinRoomPrefix+room, map[string]any{"can_join": true})
	}
	return newMessage(joinRoomPrefix+room, map[string]any{"can_join": false, "reason": d.reason})
}

// decisionDelivery gives a waiting participant's sockets, wherever they are, the decision and its role.
func decisionDelivery(room, key string, d decision) *wireDelivery {
	dd := newDelivery(toWaiter, grantMessage(room, d))
	dd.Waiter, dd.Decided, dd.Role = key, d.wire(), RoleRejected
	if d.admitted {
		dd.Role = RoleAdmitted
	}
	return dd
}

func leftDelivery(email, why, key string) *wireDelivery {
	d := newDelivery(ToModerators, newMessage(evWaitingLeft, map[string]any{"email": email, "reason": why}))
	d.Gone = key
	return d
}

func (lc *rconf) rememberLocked(msg *Message) {
	n := lc.h.history
	if n == 0 {
		return
	}
	if len(lc.history) < n {
		lc.history = append(lc.history, msg)
		return
	}
	lc.history[lc.histPos] = msg
	lc.histPos = (lc.histPos + 1) % n
}

// sendHistoryLocked sends the chat history, oldest first: the fleet's, or what this node saw while Redis is
// unreachable.
func (lc *rconf) sendHistoryLocked(ids []string, role Role) {
	h := lc.h
	msgs := make([]rawJSON, 0, h.history)
	stored, err := lc.room.Chat(h.ctx, h.history)
	if err == nil {
		for _, b := range stored {
			if !json.Valid(b) {
				h.badEntry("chat history", errWire)
				continue
			}
			msgs = append(msgs, rawJSON(b))
		}
	} else {
		if !h.unavailable(err) {
			h.log.Warn("reading chat history", "room", lc.key.Room, "err", err)
		}
		for i := range lc.history {
			msgs = append(msgs, rawJSON(lc.history[(lc.histPos+i)%len(lc.history)].Data))
		}
	}
	lc.toSessions(ids, role, newMessage(evChatHistory, map[string]any{"messages": msgs}))
}

type listedWaiter struct {
	key string
	p   Participant
}

// waitingLocked returns the waiting list in join order: the fleet's, or this node's while Redis is
// unreachable.
func (lc *rconf) waitingLocked() (_ []listedWaiter, local bool, _ error) {
	h := lc.h
	var out []listedWaiter
	entries, err := lc.room.Waiting(h.ctx)
	switch {
	case err == nil:
		for _, e := range entries {
			p, err := decodeParticipant(e.Data)
			if err != nil {
				h.badEntry("waiting entry", err)
				continue
			}
			out = append(out, listedWaiter{e.Key, p})
		}
	case h.unavailable(err):
		local = true
		for _, w := range lc.waiters {
			out = append(out, listedWaiter{w.key, w.participant()})
		}
	default:
		return nil, false, err
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].p.JoinedAt != out[j].p.JoinedAt {
			return out[i].p.JoinedAt < out[j].p.JoinedAt
		}
		return out[i].key < out[j].key
	})
	return out, local, nil
}

func (lc *rconf) listLocked() []Participant {
	list, _, err := lc.waitingLocked()
	if err != nil {
		lc.h.log.Warn("reading the waiting list", "room", lc.key.Room, "err", err)
	}
	out := make([]Participant, 0, len(list))
	for _, w := range list {
		out = append(out, w.p)
	}
	return out
}

func (w *rwaiter) participant() Participant {
	return Participant{Name: w.ident.Name, Email: w.ident.Email, Avatar: w.ident.Avatar, JoinedAt: w.joinedAt.UnixMilli()}
}

func (w *rwaiter) entry() []byte {
	b, _ := json.Marshal(w.participant())
	return b
}

// Other nodes' events.

// handler decodes a run's events on the subscription's reader and queues them for the dispatcher: the reader
// is shared by every channel, so it never waits on a conference's lock. What does not decode is counted and
// dropped by the fleet.
func (h *RedisHub) handler(k ConfKey) fleet.Handler {
	return func(p []byte) error {
		ev, err := decodeWire(p)
		if err != nil {
			return err
		}
		if ev.From == h.holder {
			return nil // applied when published
		}
		select {
		case h.inbox <- inbound{k, ev}:
		case <-h.ctx.Done():
		default:
			h.m.dropped.Inc()
			h.stale.Store(true)
			if n := h.m.dropped.Get(); n&(n-1) == 0 {
				h.log.Warn("hub events dropped: this node cannot keep up", "dropped_total", n)
			}
		}
		return nil
	}
}

func (h *RedisHub) dispatch() {
	defer h.wg.Done()
	for {
		select {
		case <-h.ctx.Done():
			return
		case in := <-h.inbox:
			lc := h.join(in.k, false)
			if lc == nil {
				continue // no socket of that run here any longer
			}
			for _, d := range in.ev.D {
				lc.applyLocked(d)
			}
			h.unlockConf(lc)
		}
	}
}

func (h *RedisHub) badEntry(what string, err error) {
	h.m.bad.Inc()
	if n := h.m.bad.Get(); n&(n-1) == 0 {
		h.log.Warn("undecodable entry in Redis dropped", "what", what, "err", err, "dropped_total", n)
	}
}
