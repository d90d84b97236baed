package signaling

import (
	"encoding/json"
	"slices"
	"sort"

	"github.com/hlsedge/hlsedge/internal/fleet"
)

// How a RedisHub's deliveries reach the sockets of every node: applied here, published for the others, and
// applied there as they arrive.

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
			ids = lc.settleLocked(w, d.Role)
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
		lc.chat.add(msg)
	}
	lc.h.rcv.deliver(&Delivery{Conf: lc.key, To: d.To, Role: d.Role, Msg: msg, End: d.End})
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

// historyLocked returns the fleet's chat history, or what this node saw while Redis is unreachable.
func (lc *rconf) historyLocked() []rawJSON {
	h := lc.h
	stored, err := lc.room.Chat(h.ctx, h.history)
	if err != nil {
		if !h.unavailable(err) {
			h.log.Warn("reading chat history", "room", lc.key.Room, "err", err)
		}
		return lc.chat.messages()
	}
	msgs := make([]rawJSON, 0, len(stored))
	for _, b := range stored {
		if !json.Valid(b) {
			h.badEntry("chat history", errWire)
			continue
		}
		msgs = append(msgs, rawJSON(b))
	}
	return msgs
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

func (lc *rconf) waitingListLocked() []Participant {
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

func (w *waiter) entry() []byte {
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
