package signaling

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/hlsedge/hlsedge/internal/fleet"
)

// A RedisHub's operations on a conference run: its sockets, its waiting room and its chat.

// join returns the run's local state locked, creating it (and subscribing to its channel) when create is set;
// nil when it does not exist. Whoever creates it waits until the subscription is live, so that nothing
// published after its socket connected is missed, unless Redis is unreachable.
func (h *RedisHub) join(k ConfKey, create bool) *rconf {
	return lockLive(func() *rconf {
		h.mu.Lock()
		lc := h.confs[k]
		if lc == nil && create && !h.closed {
			lc = &rconf{
				hubConf:    newHubConf(k, &h.rcv, h.history),
				h:          h,
				room:       h.fc.Room(k.Room, k.ContentID, 0),
				pendingDec: map[string]decision{},
			}
			lc.shared = lc
			lc.sub = lc.room.Subscribe(h.handler(k))
			h.confs[k] = lc
		}
		h.mu.Unlock()
		if lc != nil && create && !h.fc.Degraded() {
			select {
			case <-lc.sub.Ready():
			case <-time.After(liveWait):
				h.log.Warn("conference subscription not live yet", "room", k.Room)
			}
		}
		return lc
	})
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
	m := lc.addMemberLocked(s)
	if !lc.ended {
		if _, err := lc.room.Hold(h.ctx, h.holder, h.clock.Now().Add(hubLease), []string{s.ID}, nil); err != nil && !h.unavailable(err) {
			h.log.Warn("announcing a socket", "room", k.Room, "err", err)
		}
	}
	lc.greetLocked(s, m)
	return nil
}

// Disconnect implements Hub.
func (h *RedisHub) Disconnect(k ConfKey, s Session) {
	lc := h.join(k, false)
	if lc == nil {
		return
	}
	defer h.unlockConf(lc)
	m, w := lc.leaveLocked(s.ID)
	if m != nil && !lc.ended {
		if err := lc.room.RemoveMember(h.ctx, s.ID); err != nil && !h.unavailable(err) {
			h.log.Debug("forgetting a socket; its lease lapses instead", "err", err)
		}
	}
	if w == nil {
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
		if lc := h.join(k, false); lc != nil {
			if lc.awayLocked(w) {
				lc.waiterGoneLocked(w)
			}
			h.unlockConf(lc)
		}
	})
}

// waiterGoneLocked forgets a waiter with no socket left here and, unless another node still holds them, takes
// them out of the waiting list and tells the moderators.
func (lc *rconf) waiterGoneLocked(w *waiter) {
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
	m, answered, err := lc.rejoinLocked(s)
	if answered {
		return err
	}
	ids := []string{s.ID}
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
		w = &waiter{key: m.key, ident: s.User, joinedAt: now}
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
	lc.seatLocked(m, w, s.ID)
	if announce {
		joined := newDelivery(ToModerators, newMessage(evWaitingJoined, map[string]any{"participant": w.participant()}))
		lc.sendLocked(joined)
	}
	lc.welcomeLocked(ids)
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
	msg, err := lc.chatLocked(from, text, at)
	if err != nil {
		return err
	}
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
