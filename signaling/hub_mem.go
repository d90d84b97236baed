package signaling

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// memHub is the Hub of one process: everything in memory, one lock per conference so that conferences never wait
// for each other. It delivers to every attached node at once, under the conference's lock, so that each node
// sees a conference's events in the order they were decided; tests attach two servers to one to stand for a
// fleet.
type memHub struct {
	grace          time.Duration
	history        int
	defaultWaiting bool
	clock          clock

	nodes atomic.Pointer[[]Receiver] // copied on Attach and detach: the fan-out reads it without a lock

	mu       sync.Mutex
	registry map[string]Conference
	confs    map[ConfKey]*confState
	users    map[string][]string // a user's reserved session IDs, by user key
	closed   bool
}

// newMemHub returns the hub a server keeps when given none. grace is how long a disconnected waiting participant
// keeps their place (negative: none), history how many chat messages a joiner receives, defaultWaiting whether
// conferences missing from the registry have a waiting room: signaling.reconnect_grace, chat_history and
// default_waiting_room.
func newMemHub(grace time.Duration, history int, defaultWaiting bool, clk clock) *memHub {
	return &memHub{
		grace:          grace,
		history:        max(history, 0),
		defaultWaiting: defaultWaiting,
		clock:          clk,
		registry:       map[string]Conference{},
		confs:          map[ConfKey]*confState{},
		users:          map[string][]string{},
	}
}

// memberState is a session as its conference's state knows it.
type memberState struct {
	role Role
	w    *waiter
}

// waiter is one participant in (or, while reconnecting, held for) the waiting room. A user with two tabs is one
// waiter with two sessions, so admitting them admits both.
type waiter struct {
	key      string
	ident    Identity
	sessions []string // session IDs
	joinedAt time.Time
	grace    timer
	queued   bool // in confState.queue, visible to moderators
}

// confState is one conference run.
type confState struct {
	h       *memHub
	mu      sync.Mutex
	key     ConfKey
	dead    bool                    // removed from memHub.confs; callers look it up again
	members map[string]*memberState // by session ID
	queue   []*waiter               // the visible waiting list, in join order
	byKey   map[string]*waiter      // queue plus disconnected waiters inside their grace period
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

func (h *memHub) Attach(r Receiver) func() {
	h.mu.Lock()
	h.setNodesLocked(append(h.nodeList(), r))
	h.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			var keep []Receiver
			for _, n := range h.nodeList() {
				if n != r {
					keep = append(keep, n)
				}
			}
			h.setNodesLocked(keep)
		})
	}
}

// nodeList returns a copy of the attached receivers, to change and store back under h.mu.
func (h *memHub) nodeList() []Receiver {
	if p := h.nodes.Load(); p != nil {
		return append([]Receiver(nil), *p...)
	}
	return nil
}

func (h *memHub) setNodesLocked(rs []Receiver) { h.nodes.Store(&rs) }

func (h *memHub) deliver(d *Delivery) {
	if p := h.nodes.Load(); p != nil {
		for _, r := range *p {
			r.Deliver(d)
		}
	}
}

func (h *memHub) PutConference(c Conference) (int, error) {
	h.mu.Lock()
	prev, had := h.registry[c.Room]
	h.registry[c.Room] = c
	ended := 0
	var admitAll *confState
	if had && prev.ContentID != c.ContentID {
		ended = h.dropLocked(ConfKey{prev.Room, prev.ContentID}, conferenceReplacedReason)
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
	return ended, nil
}

func (h *memHub) DeleteConference(room string) (Conference, int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.registry[room]
	if !ok {
		return c, 0, ErrNotRunning
	}
	delete(h.registry, room)
	return c, h.dropLocked(ConfKey{c.Room, c.ContentID}, conferenceEndedReason), nil
}

// dropLocked forgets a conference run and returns how many sessions it had. With a reason, they are sent End.
func (h *memHub) dropLocked(k ConfKey, reason string) int {
	st := h.confs[k]
	if st == nil {
		return 0
	}
	delete(h.confs, k)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.dead = true
	for _, w := range st.byKey {
		if w.grace != nil {
			w.grace.Stop()
		}
	}
	n := len(st.members)
	if n > 0 && reason != "" {
		h.deliver(&Delivery{Conf: k, To: ToAll, End: reason})
	}
	return n
}

func (h *memHub) LookupConference(room string) (Conference, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.registry[room]
	return c, ok, nil
}

func (h *memHub) Conferences() ([]Conference, error) {
	h.mu.Lock()
	out := make([]Conference, 0, len(h.registry))
	for _, c := range h.registry {
		out = append(out, c)
	}
	h.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Room < out[j].Room })
	return out, nil
}

func (h *memHub) Reserve(s Session, perUser int) error {
	key := s.User.key()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.users[key]) >= perUser {
		return ErrTooManyUser
	}
	h.users[key] = append(h.users[key], s.ID)
	return nil
}

func (h *memHub) Release(s Session) {
	key := s.User.key()
	h.mu.Lock()
	defer h.mu.Unlock()
	if ids := removeString(h.users[key], s.ID); len(ids) > 0 {
		h.users[key] = ids
	} else {
		delete(h.users, key)
	}
}

func (h *memHub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for k := range h.confs {
		h.dropLocked(k, "")
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
				h:       h,
				key:     k,
				members: map[string]*memberState{},
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

func (h *memHub) Connect(k ConfKey, s Session) error {
	st := h.lock(k, true)
	if st == nil {
		return ErrClosed
	}
	defer h.unlock(st)
	ms := &memberState{role: RoleNone}
	st.members[s.ID] = ms
	if s.User.Moderator {
		ms.role = RoleModerator
		ids := []string{s.ID}
		st.toSessions(ids, RoleModerator, newMessage(evWaitingRoomList, map[string]any{"participants": st.listLocked()}))
		st.sendHistoryLocked(ids, 0)
	}
	return nil
}

func (h *memHub) Disconnect(k ConfKey, s Session) {
	st := h.lock(k, false)
	if st == nil {
		return
	}
	defer h.unlock(st)
	ms := st.members[s.ID]
	if ms == nil {
		return
	}
	delete(st.members, s.ID)
	if ms.role != RoleWaiting {
		return
	}
	w := ms.w
	w.sessions = removeString(w.sessions, s.ID)
	if len(w.sessions) > 0 {
		return
	}
	if h.grace <= 0 {
		st.removeWaiterLocked(w, leftDisconnected)
		return
	}
	// Keep the place: a reconnect inside the grace period finds the waiter again by identity.
	w.grace = h.clock.AfterFunc(h.grace, func() {
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

func (h *memHub) JoinWaiting(k ConfKey, s Session) error {
	if s.User.Moderator {
		return ErrModerator
	}
	waitingRoom := h.waitingRoom(k)
	st := h.lock(k, true)
	if st == nil {
		return ErrNotRunning
	}
	defer h.unlock(st)
	ms := st.members[s.ID]
	if ms == nil {
		ms = &memberState{role: RoleNone}
		st.members[s.ID] = ms
	}
	ids := []string{s.ID}
	key := s.User.key()
	switch ms.role {
	case RoleWaiting:
		st.toSessions(ids, 0, newMessage(evJoinWaitingResponse, map[string]any{"success": true, "waiting": true}))
		return nil
	case RoleAdmitted:
		st.grantLocked(ids, 0)
		return nil
	case RoleRejected:
		return ErrRejected
	}
	if d, ok := st.decided[key]; ok {
		if !d.admitted {
			ms.role = RoleRejected
			st.toSessions(ids, RoleRejected, newMessage(joinRoomPrefix+k.Room, map[string]any{"can_join": false, "reason": d.reason}))
			return nil
		}
		ms.role = RoleAdmitted
		st.sendHistoryLocked(ids, RoleAdmitted)
		st.grantLocked(ids, 0)
		return nil
	}
	if !waitingRoom {
		ms.role = RoleAdmitted
		st.decided[key] = decision{admitted: true}
		st.sendHistoryLocked(ids, RoleAdmitted)
		st.grantLocked(ids, 0)
		return nil
	}
	ms.role = RoleWaiting
	// A waiter inside their grace period is still queued: the reconnect keeps the place.
	w := st.byKey[key]
	if w == nil {
		w = &waiter{key: key, ident: s.User, joinedAt: h.clock.Now()}
		st.byKey[key] = w
	}
	if w.grace != nil {
		w.grace.Stop()
		w.grace = nil
	}
	w.sessions = append(w.sessions, s.ID)
	ms.w = w
	if !w.queued {
		w.queued = true
		st.queue = append(st.queue, w)
		st.toModeratorsLocked(newMessage(evWaitingJoined, map[string]any{"participant": w.participant()}))
	}
	st.toSessions(ids, RoleWaiting, newMessage(evJoinWaitingResponse, map[string]any{"success": true, "waiting": true}))
	st.sendHistoryLocked(ids, 0)
	return nil
}

func (h *memHub) LeaveWaiting(k ConfKey, s Session) error {
	st := h.lock(k, false)
	if st == nil {
		return ErrNotJoined
	}
	defer h.unlock(st)
	ms := st.members[s.ID]
	if ms == nil || ms.role != RoleWaiting {
		return ErrNotJoined
	}
	w := ms.w
	for _, id := range w.sessions {
		st.members[id].role, st.members[id].w = RoleNone, nil
	}
	// Out of the waiting room is out of the chat, on every node.
	st.toSessions(w.sessions, RoleNone, nil)
	w.sessions = nil
	st.removeWaiterLocked(w, leftLeft)
	return nil
}

func (h *memHub) Accept(k ConfKey, by Session, email string, everyone bool) (int, error) {
	if !by.User.Moderator {
		return 0, ErrNotModerator
	}
	st := h.lock(k, false)
	if st == nil {
		return 0, ErrNoSuchWaiter
	}
	defer h.unlock(st)
	if everyone {
		return st.admitAllLocked(), nil
	}
	w := st.findLocked(email)
	if w == nil {
		return 0, ErrNoSuchWaiter
	}
	st.admitLocked(w)
	return 1, nil
}

func (h *memHub) Reject(k ConfKey, by Session, email, reason string) error {
	if !by.User.Moderator {
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
	for _, id := range w.sessions {
		st.members[id].role, st.members[id].w = RoleRejected, nil
	}
	st.toSessions(w.sessions, RoleRejected, newMessage(joinRoomPrefix+k.Room, map[string]any{"can_join": false, "reason": reason}))
	w.sessions = nil
	st.removeWaiterLocked(w, leftRejected)
	return nil
}

func (h *memHub) Chat(k ConfKey, from Session, text string, at time.Time) error {
	st := h.lock(k, false)
	if st == nil {
		return ErrNotJoined
	}
	defer h.unlock(st)
	ms := st.members[from.ID]
	if ms == nil || !ms.role.chats() {
		return ErrNotJoined
	}
	id := &from.User
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
	// Fast path: one delivery for the whole room; each node only queues it on its sockets.
	h.deliver(&Delivery{Conf: k, To: ToChat, Msg: msg})
	return nil
}

// toSessions delivers msg (when set) to the listed sessions, setting their role first (when not zero).
func (st *confState) toSessions(ids []string, role Role, msg *Message) {
	if len(ids) == 0 {
		return
	}
	st.h.deliver(&Delivery{Conf: st.key, To: ToSessions, Sessions: ids, Role: role, Msg: msg})
}

func (st *confState) toModeratorsLocked(msg *Message) {
	st.h.deliver(&Delivery{Conf: st.key, To: ToModerators, Msg: msg})
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
	for _, id := range w.sessions {
		st.members[id].role, st.members[id].w = RoleAdmitted, nil
	}
	st.grantLocked(w.sessions, RoleAdmitted)
	w.sessions = nil
	st.removeWaiterLocked(w, leftAdmitted)
}

func (st *confState) grantLocked(ids []string, role Role) {
	st.toSessions(ids, role, newMessage(joinRoomPrefix+st.key.Room, map[string]any{"can_join": true}))
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
	if w.grace != nil {
		w.grace.Stop()
		w.grace = nil
	}
	if st.byKey[w.key] == w {
		delete(st.byKey, w.key)
	}
	if wasQueued {
		st.toModeratorsLocked(newMessage(evWaitingLeft, map[string]any{"email": w.ident.Email, "reason": why}))
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

func (st *confState) listLocked() []Participant {
	out := make([]Participant, 0, len(st.queue))
	for _, w := range st.queue {
		out = append(out, w.participant())
	}
	return out
}

// sendHistoryLocked sends the chat history, oldest first, setting the sessions' role first (when not zero).
func (st *confState) sendHistoryLocked(ids []string, role Role) {
	msgs := make([]rawJSON, 0, len(st.history))
	for i := range st.history {
		msgs = append(msgs, rawJSON(st.history[(st.histPos+i)%len(st.history)].Data))
	}
	st.toSessions(ids, role, newMessage(evChatHistory, map[string]any{"messages": msgs}))
}

// rawJSON is an already encoded value, so that history is not encoded twice.
type rawJSON []byte

// MarshalJSON implements json.Marshaler.
func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

func (w *waiter) participant() Participant {
	return Participant{Name: w.ident.Name, Email: w.ident.Email, Avatar: w.ident.Avatar, JoinedAt: w.joinedAt.UnixMilli()}
}

func removeString(s []string, v string) []string {
	for i, x := range s {
		if x == v {
			return append(s[:i:i], s[i+1:]...)
		}
	}
	return s
}
