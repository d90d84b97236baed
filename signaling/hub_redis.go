package signaling

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"sort"
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

// rconf is what a node keeps of one conference run it has sockets in: what every hub keeps of it, and the run's
// Redis state. While Redis is unreachable, its waiters are the waiting list this node's moderators see and its
// chat the history joiners get.
type rconf struct {
	hubConf
	h    *RedisHub
	room *fleet.Room
	sub  *fleet.Subscription

	ended bool // the run was ended or replaced: its Redis state is gone, so it is not written again
	// Taken while Redis was unreachable, written when it returns.
	pendingDec  map[string]decision
	pendingChat [][]byte
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
