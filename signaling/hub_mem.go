package signaling

import (
	"sort"
	"strings"
	"sync"
	"time"
)

// memHub is the Hub of one node: everything in memory, one lock per conference so that conferences never wait
// for each other.
type memHub struct {
	grace          time.Duration
	history        int
	defaultWaiting bool
	now            func() time.Time

	mu       sync.Mutex
	registry map[string]Conference
	confs    map[ConfKey]*confState
	closed   bool
}

// NewMemoryHub returns the single-node Hub. grace is how long a disconnected waiting participant keeps their
// place (negative: none), history how many chat messages a joiner receives, defaultWaiting whether conferences
// missing from the registry have a waiting room.
func NewMemoryHub(grace time.Duration, history int, defaultWaiting bool) Hub {
	return newMemHub(grace, history, defaultWaiting, time.Now)
}

func newMemHub(grace time.Duration, history int, defaultWaiting bool, now func() time.Time) *memHub {
	if history < 0 {
		history = 0
	}
	return &memHub{
		grace:          grace,
		history:        history,
		defaultWaiting: defaultWaiting,
		now:            now,
		registry:       map[string]Conference{},
		confs:          map[ConfKey]*confState{},
	}
}

type role uint8

const (
	roleNone role = iota // connected, not joined yet
	roleModerator
	roleWaiting
	roleAdmitted
	roleRejected
)

type memberState struct {
	role role
	w    *waiter
}

// waiter is one participant in (or, while reconnecting, held for) the waiting room. A user with two tabs is one
// waiter with two sessions, so admitting them admits both.
type waiter struct {
	key      string
	ident    Identity
	sessions []Member
	joinedAt time.Time
	grace    *time.Timer
	queued   bool // in confState.queue, visible to moderators
}

// confState is one conference run.
type confState struct {
	mu      sync.Mutex
	key     ConfKey
	dead    bool // removed from memHub.confs; callers look it up again
	members map[Member]*memberState
	queue   []*waiter          // the visible waiting list, in join order
	byKey   map[string]*waiter // queue plus disconnected waiters inside their grace period
	// decided remembers admissions and rejections for this run, so that a reconnect, or a decision taken while
	// the participant was reconnecting, is honoured at once.
	decided map[string]decision
	history []*Message // ring of chat_message events
	histPos int
}

type decision struct {
	admitted bool
	reason   string
}

func (h *memHub) PutConference(c Conference) []Member {
	h.mu.Lock()
	prev, had := h.registry[c.Room]
	h.registry[c.Room] = c
	var ended []Member
	var admitAll *confState
	if had && prev.ContentID != c.ContentID {
		ended = h.dropLocked(ConfKey{prev.Room, prev.ContentID})
	} else if had && prev.WaitingRoom && !c.WaitingRoom {
		admitAll = h.confs[ConfKey{c.Room, c.ContentID}]
	}
	h.mu.Unlock()
	if admitAll != nil {
		// Turning the waiting room off admits everyone in it, as Jitsi's lobby does.
		admitAll.mu.Lock()
		if !admitAll.dead {
			admitAll.admitAllLocked()
		}
		admitAll.mu.Unlock()
	}
	return ended
}

func (h *memHub) DeleteConference(room string) (Conference, []Member, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.registry[room]
	if !ok {
		return c, nil, false
	}
	delete(h.registry, room)
	return c, h.dropLocked(ConfKey{c.Room, c.ContentID}), true
}

// dropLocked forgets a conference run and returns its members.
func (h *memHub) dropLocked(k ConfKey) []Member {
	st := h.confs[k]
	if st == nil {
		return nil
	}
	delete(h.confs, k)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.dead = true
	out := make([]Member, 0, len(st.members))
	for m := range st.members {
		out = append(out, m)
	}
	for _, w := range st.byKey {
		if w.grace != nil {
			w.grace.Stop()
		}
	}
	return out
}

func (h *memHub) LookupConference(room string) (Conference, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.registry[room]
	return c, ok
}

func (h *memHub) Conferences() []Conference {
	h.mu.Lock()
	out := make([]Conference, 0, len(h.registry))
	for _, c := range h.registry {
		out = append(out, c)
	}
	h.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Room < out[j].Room })
	return out
}

func (h *memHub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for k := range h.confs {
		h.dropLocked(k)
	}
}

// lock returns the conference's state locked, creating it when create is set; nil when it does not exist.
func (h *memHub) lock(k ConfKey, create bool) *confState {
	for {
		h.mu.Lock()
		st := h.confs[k]
		if st == nil {
			if !create || h.closed {
				h.mu.Unlock()
				return nil
			}
			st = &confState{
				key:     k,
				members: map[Member]*memberState{},
				byKey:   map[string]*waiter{},
				decided: map[string]decision{},
			}
			h.confs[k] = st
		}
		h.mu.Unlock()
		st.mu.Lock()
		if !st.dead {
			return st
		}
		st.mu.Unlock()
	}
}

// unlock releases a conference and forgets it when nobody is left in it and it is not the registered run, so
// that conferences nobody announced do not pile up.
func (h *memHub) unlock(st *confState) {
	empty := len(st.members) == 0 && len(st.byKey) == 0
	st.mu.Unlock()
	if !empty {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.registry[st.key.Room]; ok && r.ContentID == st.key.ContentID {
		return
	}
	st.mu.Lock()
	if len(st.members) == 0 && len(st.byKey) == 0 && !st.dead {
		st.dead = true
		delete(h.confs, st.key)
	}
	st.mu.Unlock()
}

func (h *memHub) waitingRoom(k ConfKey) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.registry[k.Room]; ok && r.ContentID == k.ContentID {
		return r.WaitingRoom
	}
	return h.defaultWaiting
}

func (h *memHub) Connect(k ConfKey, m Member) {
	st := h.lock(k, true)
	if st == nil {
		return
	}
	defer h.unlock(st)
	ms := &memberState{}
	st.members[m] = ms
	if m.Who().Moderator {
		ms.role = roleModerator
		m.Send(newMessage(evWaitingRoomList, map[string]any{"participants": st.listLocked()}))
		st.sendHistoryLocked(m)
	}
}

func (h *memHub) Disconnect(k ConfKey, m Member) {
	st := h.lock(k, false)
	if st == nil {
		return
	}
	defer h.unlock(st)
	ms := st.members[m]
	if ms == nil {
		return
	}
	delete(st.members, m)
	if ms.role != roleWaiting {
		return
	}
	w := ms.w
	w.sessions = removeMember(w.sessions, m)
	if len(w.sessions) > 0 {
		return
	}
	if h.grace <= 0 {
		st.removeWaiterLocked(w, leftDisconnected)
		return
	}
	// Keep the place: a reconnect inside the grace period finds the waiter again by identity.
	w.grace = time.AfterFunc(h.grace, func() {
		st := h.lock(k, false)
		if st == nil {
			return
		}
		defer h.unlock(st)
		if cur := st.byKey[w.key]; cur == w && len(w.sessions) == 0 {
			st.removeWaiterLocked(w, leftDisconnected)
		}
	})
}

func (h *memHub) JoinWaiting(k ConfKey, m Member) error {
	if m.Who().Moderator {
		return ErrModerator
	}
	waitingRoom := h.waitingRoom(k)
	st := h.lock(k, true)
	if st == nil {
		return ErrNotRunning
	}
	defer h.unlock(st)
	ms := st.members[m]
	if ms == nil {
		ms = &memberState{}
		st.members[m] = ms
	}
	id := m.Who()
	key := id.key()
	switch ms.role {
	case roleWaiting:
		m.Send(newMessage(evJoinWaitingResponse, map[string]any{"success": true, "waiting": true}))
		return nil
	case roleAdmitted:
		st.grantLocked(m)
		return nil
	case roleRejected:
		return ErrRejected
	}
	if d, ok := st.decided[key]; ok {
		if !d.admitted {
			ms.role = roleRejected
			m.Send(newMessage(joinRoomPrefix+k.Room, map[string]any{"can_join": false, "reason": d.reason}))
			return nil
		}
		ms.role = roleAdmitted
		st.sendHistoryLocked(m)
		st.grantLocked(m)
		return nil
	}
	if !waitingRoom {
		ms.role = roleAdmitted
		st.decided[key] = decision{admitted: true}
		st.sendHistoryLocked(m)
		st.grantLocked(m)
		return nil
	}
	ms.role = roleWaiting
	// A waiter inside their grace period is still queued: the reconnect keeps the place.
	w := st.byKey[key]
	if w == nil {
		w = &waiter{key: key, ident: *id, joinedAt: h.now()}
		st.byKey[key] = w
	}
	if w.grace != nil {
		w.grace.Stop()
		w.grace = nil
	}
	w.sessions = append(w.sessions, m)
	ms.w = w
	if !w.queued {
		w.queued = true
		st.queue = append(st.queue, w)
		st.toModeratorsLocked(newMessage(evWaitingJoined, map[string]any{"participant": w.participant()}))
	}
	m.Send(newMessage(evJoinWaitingResponse, map[string]any{"success": true, "waiting": true}))
	st.sendHistoryLocked(m)
	return nil
}

func (h *memHub) LeaveWaiting(k ConfKey, m Member) error {
	st := h.lock(k, false)
	if st == nil {
		return ErrNotJoined
	}
	defer h.unlock(st)
	ms := st.members[m]
	if ms == nil || ms.role != roleWaiting {
		return ErrNotJoined
	}
	w := ms.w
	for _, s := range w.sessions {
		st.members[s].role, st.members[s].w = roleNone, nil
	}
	st.removeWaiterLocked(w, leftLeft)
	return nil
}

func (h *memHub) Accept(k ConfKey, by Member, email string, everyone bool) (int, error) {
	if !by.Who().Moderator {
		return 0, ErrNotModerator
	}
	st := h.lock(k, false)
	if st == nil {
		return 0, ErrNoSuchWaiter
	}
	defer h.unlock(st)
	if everyone {
		n := st.admitAllLocked()
		return n, nil
	}
	w := st.findLocked(email)
	if w == nil {
		return 0, ErrNoSuchWaiter
	}
	st.admitLocked(w)
	return 1, nil
}

func (h *memHub) Reject(k ConfKey, by Member, email, reason string) error {
	if !by.Who().Moderator {
		return ErrNotModerator
	}
	st := h.lock(k, false)
	if st == nil {
		return ErrNoSuchWaiter
	}
	defer h.unlock(st)
	w := st.findLocked(email)
	if w == nil {
		return ErrNoSuchWaiter
	}
	if reason == "" {
		reason = defaultRejectReason
	}
	st.decided[w.key] = decision{reason: reason}
	msg := newMessage(joinRoomPrefix+k.Room, map[string]any{"can_join": false, "reason": reason})
	for _, s := range w.sessions {
		st.members[s].role, st.members[s].w = roleRejected, nil
		s.Send(msg)
	}
	w.sessions = nil
	st.removeWaiterLocked(w, leftRejected)
	return nil
}

func (h *memHub) Chat(k ConfKey, from Member, text string, at time.Time) error {
	st := h.lock(k, false)
	if st == nil {
		return ErrNotJoined
	}
	defer h.unlock(st)
	ms := st.members[from]
	if ms == nil || (ms.role != roleModerator && ms.role != roleWaiting && ms.role != roleAdmitted) {
		return ErrNotJoined
	}
	id := from.Who()
	msg := newMessage(evChatMessage, ChatMessage{
		From: ChatFrom{Name: id.Name, Email: id.Email, Avatar: id.Avatar, Moderator: id.Moderator},
		Text: text,
		TS:   at.UnixMilli(),
	})
	if h.history > 0 {
		if len(st.history) < h.history {
			st.history = append(st.history, msg)
		} else {
			st.history[st.histPos] = msg
			st.histPos = (st.histPos + 1) % h.history
		}
	}
	// Fast path: Send only queues, so the lock is held for a few hundred nanoseconds per member.
	for m, ms := range st.members {
		switch ms.role {
		case roleModerator, roleWaiting, roleAdmitted:
			m.Send(msg)
		}
	}
	return nil
}

// admitAllLocked admits every waiter, connected or reconnecting.
func (st *confState) admitAllLocked() int {
	q := st.queue
	st.queue = nil
	for _, w := range q {
		w.queued = false
		st.admitLocked(w)
	}
	return len(q)
}

// admitLocked sends the grant to the waiter's own sessions and nobody else's: the seed sent it to the
// moderator's session.
func (st *confState) admitLocked(w *waiter) {
	st.decided[w.key] = decision{admitted: true}
	for _, s := range w.sessions {
		st.members[s].role, st.members[s].w = roleAdmitted, nil
		st.grantLocked(s)
	}
	w.sessions = nil
	st.removeWaiterLocked(w, leftAdmitted)
}

func (st *confState) grantLocked(m Member) {
	m.Send(newMessage(joinRoomPrefix+st.key.Room, map[string]any{"can_join": true}))
}

// removeWaiterLocked takes a waiter off the list and tells the moderators why. A decision taken while the waiter
// was reconnecting lives on in confState.decided, so the reconnect still learns it.
func (st *confState) removeWaiterLocked(w *waiter, why string) {
	wasQueued := w.queued
	if w.queued {
		w.queued = false
		for i, q := range st.queue {
			if q == w {
				st.queue = append(st.queue[:i:i], st.queue[i+1:]...)
				break
			}
		}
	}
	st.forgetWaiterLocked(w)
	if wasQueued {
		st.toModeratorsLocked(newMessage(evWaitingLeft, map[string]any{"email": w.ident.Email, "reason": why}))
	}
}

func (st *confState) forgetWaiterLocked(w *waiter) {
	if w.grace != nil {
		w.grace.Stop()
		w.grace = nil
	}
	if st.byKey[w.key] == w {
		delete(st.byKey, w.key)
	}
}

func (st *confState) findLocked(email string) *waiter {
	for _, w := range st.queue {
		if strings.EqualFold(w.ident.Email, email) {
			return w
		}
	}
	return nil
}

func (st *confState) toModeratorsLocked(msg *Message) {
	for m, ms := range st.members {
		if ms.role == roleModerator {
			m.Send(msg)
		}
	}
}

func (st *confState) listLocked() []Participant {
	out := make([]Participant, 0, len(st.queue))
	for _, w := range st.queue {
		out = append(out, w.participant())
	}
	return out
}

func (st *confState) sendHistoryLocked(m Member) {
	msgs := make([]ChatMessageRaw, 0, len(st.history))
	for i := range st.history {
		msgs = append(msgs, ChatMessageRaw(st.history[(st.histPos+i)%len(st.history)].Data))
	}
	m.Send(newMessage(evChatHistory, map[string]any{"messages": msgs}))
}

// ChatMessageRaw is an already encoded ChatMessage, so that history is not encoded twice.
type ChatMessageRaw []byte

// MarshalJSON implements json.Marshaler.
func (r ChatMessageRaw) MarshalJSON() ([]byte, error) { return r, nil }

func (w *waiter) participant() Participant {
	return Participant{Name: w.ident.Name, Email: w.ident.Email, Avatar: w.ident.Avatar, JoinedAt: w.joinedAt.UnixMilli()}
}

func removeMember(s []Member, m Member) []Member {
	for i, x := range s {
		if x == m {
			return append(s[:i:i], s[i+1:]...)
		}
	}
	return s
}
