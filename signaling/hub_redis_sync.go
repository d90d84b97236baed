package signaling

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/hlsedge/hlsedge/internal/fleet"
)

// How a RedisHub keeps Redis in step with its node: leases renewed every hubLease/3, and a full re-sync whenever
// the fleet member becomes healthy again.

// renew runs every hubLease/3 on the hub's clock. While Redis is unreachable its calls fail fast, and the resync
// that follows Redis's return does it all. After dropped events it re-syncs everything.
func (h *RedisHub) renew() {
	if full := h.stale.Swap(false); !h.refresh(h.ctx, full) && full {
		h.stale.Store(true)
	}
	h.mu.Lock()
	if !h.closed {
		h.tick.Reset(hubLease / 3)
	}
	h.mu.Unlock()
}

// resync is the fleet's OnResync callback: Redis is back (maybe empty, after a restart) and every subscription
// is live again. A resync that Redis cut short again is not counted: the fleet calls it once more when Redis
// is back.
func (h *RedisHub) resync(ctx context.Context) {
	if h.refresh(ctx, true) {
		h.resyncs.inc()
	}
}

// refresh renews this node's leases, settles what it did while cut off, and sweeps lapsed places. full, after
// an outage, also reloads the registry, restores the places of participants inside their grace period, and
// sends this node's moderators the fleet's waiting list. It reports whether it did everything.
func (h *RedisHub) refresh(ctx context.Context, full bool) bool {
	h.syncMu.Lock()
	defer h.syncMu.Unlock()
	now := h.clock.Now()
	ok := true
	if full {
		ok = h.loadRegistry(ctx)
	}
	ok = h.renewConns(ctx, now) && ok
	h.mu.Lock()
	confs := make([]*rconf, 0, len(h.confs))
	for _, lc := range h.confs {
		confs = append(confs, lc)
	}
	h.mu.Unlock()
	for _, lc := range confs {
		if ctx.Err() != nil {
			return false
		}
		lc.mu.Lock()
		if lc.dead {
			lc.mu.Unlock()
			continue
		}
		ok = lc.refreshLocked(ctx, now, full) && ok
		h.unlockConf(lc)
	}
	return ok
}

// loadRegistry replaces the cached registry. A run this node has sockets in that was replaced meanwhile is ended
// here: the replacing node's End was published while this node could not hear it. A run that merely vanished is
// left alone, since a Redis that restarted empty lost every entry.
func (h *RedisHub) loadRegistry(ctx context.Context) bool {
	all, err := h.fc.Conferences(ctx)
	if err != nil {
		h.log.Warn("loading the conference registry", "err", err)
		return false
	}
	cache := make(map[string]Conference, len(all))
	for room, data := range all {
		c, err := decodeConference(data)
		if err != nil {
			h.badEntry("registry", err)
			continue
		}
		cache[room] = c
	}
	h.mu.Lock()
	old := h.cache
	h.cache, h.cached = cache, true
	var replaced []*rconf
	for k, lc := range h.confs {
		was, wasOK := old[k.Room]
		now, nowOK := cache[k.Room]
		if wasOK && nowOK && was.ContentID == k.ContentID && now.ContentID != k.ContentID {
			replaced = append(replaced, lc)
		}
	}
	h.mu.Unlock()
	for _, lc := range replaced {
		lc.mu.Lock()
		if !lc.dead {
			lc.applyLocked(&wireDelivery{To: ToAll, End: conferenceReplacedReason})
		}
		h.unlockConf(lc)
	}
	return true
}

// renewConns renews the per-user leases of this node's sockets, without a limit: a socket that is open stays
// open, and one admitted while Redis was unreachable counts fleet-wide from now on.
func (h *RedisHub) renewConns(ctx context.Context, now time.Time) bool {
	h.mu.Lock()
	res := maps.Clone(h.res)
	h.mu.Unlock()
	sem := make(chan struct{}, refreshWorkers)
	var wg sync.WaitGroup
	var failed atomic.Bool
	for id, user := range res {
		if ctx.Err() != nil || failed.Load() {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := h.fc.AcquireConn(ctx, user, id, 0, hubLease, now); err != nil {
				h.log.Debug("renewing a connection lease", "err", err)
				failed.Store(true)
				return
			}
			h.mu.Lock()
			_, still := h.res[id]
			h.mu.Unlock()
			if !still {
				// Released while renewing: do not let the renewal outlive the socket.
				_ = h.fc.ReleaseConn(ctx, user, id)
			}
		}()
	}
	wg.Wait()
	return !failed.Load()
}

func (lc *rconf) refreshLocked(ctx context.Context, now time.Time, full bool) bool {
	h := lc.h
	if lc.ended {
		return true
	}
	fail := func(op string, err error) {
		if !errors.Is(err, fleet.ErrUnavailable) {
			h.log.Warn(op, "room", lc.key.Room, "err", err)
		}
	}
	for key, d := range lc.pendingDec {
		b, err := lc.room.Settle(ctx, key, encodeDecision(d))
		if err != nil {
			fail("settling a decision", err)
			return false
		}
		delete(lc.pendingDec, key)
		if got, err := decodeDecision(b); err == nil && got != d {
			// Two moderators decided while their nodes could not see each other: the first decision stands.
			lc.decided[key] = got
			h.log.Warn("conflicting decisions on a participant; the first stands", "room", lc.key.Room)
		}
	}
	for len(lc.pendingChat) > 0 {
		if err := lc.room.AppendChat(ctx, lc.pendingChat[0], h.history); err != nil {
			fail("appending chat history", err)
			return false
		}
		lc.pendingChat = lc.pendingChat[1:]
	}

	sessions := make([]string, 0, len(lc.members))
	for id := range lc.members {
		sessions = append(sessions, id)
	}
	var waiting, graced []*waiter
	for _, w := range lc.waiters {
		switch {
		case len(w.sessions) > 0:
			waiting = append(waiting, w)
		case full && w.graceUntil.After(now):
			graced = append(graced, w)
		}
	}
	var ds []*wireDelivery
	held, err := lc.room.Hold(ctx, h.holder, now.Add(hubLease), sessions, entries(waiting))
	if err != nil {
		fail("renewing leases", err)
		return false
	}
	ds = lc.heldLocked(held, ds)
	// A Redis that restarted empty lost the places kept for reconnecting participants too.
	for _, w := range graced {
		held, err := lc.room.Hold(ctx, h.holder, w.graceUntil, nil, entries([]*waiter{w}))
		if err != nil {
			fail("restoring a place", err)
			return false
		}
		ds = lc.heldLocked(held, ds)
	}
	gone, err := lc.room.Sweep(ctx, now, nil)
	if err != nil {
		fail("sweeping lapsed places", err)
		return false
	}
	for _, e := range gone {
		p, err := decodeParticipant(e.Data)
		if err != nil {
			h.badEntry("waiting entry", err)
			continue
		}
		ds = append(ds, leftDelivery(p.Email, leftDisconnected, e.Key))
	}
	if len(ds) > 0 {
		lc.sendLocked(ds...)
	}
	if full {
		// Whatever this node's moderators missed while it was cut off, the list says where things stand.
		lc.h.rcv.deliver(&Delivery{Conf: lc.key, To: ToModerators,
			Msg: newMessage(evWaitingRoomList, map[string]any{"participants": lc.waitingListLocked()})})
	}
	return true
}

// heldLocked applies what Hold found: decisions this node did not hear of are applied to its sockets, and
// participants Redis did not list are announced.
func (lc *rconf) heldLocked(held fleet.Held, ds []*wireDelivery) []*wireDelivery {
	for _, e := range held.Decided {
		d, err := decodeDecision(e.Data)
		if err != nil {
			lc.h.badEntry("decision", err)
			continue
		}
		lc.applyLocked(decisionDelivery(lc.key.Room, e.Key, d))
	}
	for _, key := range held.Added {
		if w := lc.waiters[key]; w != nil {
			ds = append(ds, newDelivery(ToModerators, newMessage(evWaitingJoined, map[string]any{"participant": w.participant()})))
		}
	}
	return ds
}

func entries(ws []*waiter) []fleet.Entry {
	out := make([]fleet.Entry, len(ws))
	for i, w := range ws {
		out[i] = fleet.Entry{Key: w.key, Data: w.entry()}
	}
	return out
}

// redisHubMetrics are the hub's counters, created up front so that the fan-out only increments.
type redisHubMetrics struct {
	local, dropped, bad *metrics.Counter
}

func newRedisHubMetrics(ms *metrics.Set, h *RedisHub) *redisHubMetrics {
	ms.GetOrCreateGauge(`hlsedge_signaling_hub_conferences`, func() float64 {
		h.mu.Lock()
		defer h.mu.Unlock()
		return float64(len(h.confs))
	})
	return &redisHubMetrics{
		// Operations served from this node's own state because Redis was unreachable.
		local: ms.GetOrCreateCounter(`hlsedge_signaling_hub_local_total`),
		// Other nodes' events this node could not queue: it fell behind by a whole inbox.
		dropped: ms.GetOrCreateCounter(`hlsedge_signaling_hub_events_dropped_total{reason="queue_full"}`),
		// Entries read from Redis that did not decode (the fleet counts undecodable events).
		bad: ms.GetOrCreateCounter(`hlsedge_signaling_hub_entries_dropped_total{reason="decode"}`),
	}
}
