package signaling

import (
	"sort"
	"strings"
	"sync"
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

	rcv receivers

	mu       sync.Mutex
	registry map[string]Conference
	confs    map[ConfKey]*memConf
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
		confs:          map[ConfKey]*memConf{},
		users:          map[string][]string{},
	}
}

// memConf is one conference run: what every hub keeps of it, and the visible waiting list.
type memConf struct {
	hubConf
	queue []*waiter // the waiting list moderators see, in join order
}

// Attach implements Hub.
func (h *memHub) Attach(r Receiver) func() { return h.rcv.attach(r) }

func (h *memHub) PutConference(c Conference) (int, error) {
	h.mu.Lock()
	prev, had := h.registry[c.Room]
	h.registry[c.Room] = c
	ended := 0
	var admitAll *memConf
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
	for _, w := range st.waiters {
		if w.grace != nil {
			w.grace.Stop()
		}
	}
	n := len(st.members)
	if n > 0 && reason != "" {
		h.rcv.deliver(&Delivery{Conf: k, To: ToAll, End: reason})
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
func (h *memHub) lock(k ConfKey, create bool) *memConf {
	return lockLive(func() *memConf {
		h.mu.Lock()
		defer h.mu.Unlock()
		st := h.confs[k]
		if st == nil && create && !h.closed {
			st = &memConf{hubConf: newHubConf(k, &h.rcv, h.history)}
			st.shared = st
			h.confs[k] = st
		}
		return st
	})
}

// unlock releases a conference and forgets it when nobody is left in it and it is not the registered run, so
// that conferences nobody announced do not pile up.
func (h *memHub) unlock(st *memConf) {
	empty := len(st.members) == 0 && len(st.waiters) == 0
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
	if len(st.members) == 0 && len(st.waiters) == 0 && !st.dead {
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

// Connect implements Hub.
func (h *memHub) Connect(k ConfKey, s Session) error {
	st := h.lock(k, true)
	if st == nil {
		return ErrClosed
	}
	defer h.unlock(st)
	st.greetLocked(s, st.addMemberLocked(s))
	return nil
}

// Disconnect implements Hub.
func (h *memHub) Disconnect(k ConfKey, s Session) {
	st := h.lock(k, false)
	if st == nil {
		return
	}
	defer h.unlock(st)
	_, w := st.leaveLocked(s.ID)
	if w == nil {
		return
	}
	if h.grace <= 0 {
		st.removeWaiterLocked(w, leftDisconnected)
		return
	}
	// Keep the place: a reconnect inside the grace period finds the waiter again by identity.
	w.grace = h.clock.AfterFunc(h.grace, func() {
		if st := h.lock(k, false); st != nil {
			if st.awayLocked(w) {
				st.removeWaiterLocked(w, leftDisconnected)
			}
			h.unlock(st)
		}
	})
}

// JoinWaiting implements Hub.
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
	m, answered, err := st.rejoinLocked(s)
	if answered {
		return err
	}
	ids := []string{s.ID}
	if !waitingRoom {
		d := decision{admitted: true}
		st.decided[m.key] = d
		st.applyDecisionLocked(m, ids, d)
		return nil
	}
	// A waiter inside their grace period is still queued: the reconnect keeps the place.
	w := st.waiters[m.key]
	if w == nil {
		w = &waiter{key: m.key, ident: s.User, joinedAt: h.clock.Now()}
	}
	st.seatLocked(m, w, s.ID)
	if !w.queued {
		w.queued = true
		st.queue = append(st.queue, w)
		st.toModeratorsLocked(newMessage(evWaitingJoined, map[string]any{"participant": w.participant()}))
	}
	st.welcomeLocked(ids)
	return nil
}

// LeaveWaiting implements Hub.
func (h *memHub) LeaveWaiting(k ConfKey, s Session) error {
	st := h.lock(k, false)
	if st == nil {
		return ErrNotJoined
	}
	defer h.unlock(st)
	m := st.members[s.ID]
	if m == nil || m.role != RoleWaiting {
		return ErrNotJoined
	}
	w := m.w
	// Out of the waiting room is out of the chat, on every node.
	st.toSessions(st.settleLocked(w, RoleNone), RoleNone, nil)
	st.removeWaiterLocked(w, leftLeft)
	return nil
}

// Accept implements Hub.
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
	st.decideLocked(w, decision{admitted: true})
	return 1, nil
}

// Reject implements Hub.
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
	st.decideLocked(w, decision{reason: reason})
	return nil
}

// Chat implements Hub.
func (h *memHub) Chat(k ConfKey, from Session, text string, at time.Time) error {
	st := h.lock(k, false)
	if st == nil {
		return ErrNotJoined
	}
	defer h.unlock(st)
	msg, err := st.chatLocked(from, text, at)
	if err != nil {
		return err
	}
	st.chat.add(msg)
	// Fast path: one delivery for the whole room; each node only queues it on its sockets.
	h.rcv.deliver(&Delivery{Conf: k, To: ToChat, Msg: msg})
	return nil
}

func (st *memConf) toModeratorsLocked(msg *Message) {
	st.rcv.deliver(&Delivery{Conf: st.key, To: ToModerators, Msg: msg})
}

// admitAllLocked admits every waiter, connected or reconnecting.
func (st *memConf) admitAllLocked() int {
	q := st.queue
	st.queue = nil
	for _, w := range q {
		w.queued = false
		st.decideLocked(w, decision{admitted: true})
	}
	return len(q)
}

// decideLocked records d for the waiter and sends it to the waiter's own sessions and nobody else's: the seed
// sent admissions to the moderator's session.
func (st *memConf) decideLocked(w *waiter, d decision) {
	st.decided[w.key] = d
	role, why := RoleRejected, leftRejected
	if d.admitted {
		role, why = RoleAdmitted, leftAdmitted
	}
	st.toSessions(st.settleLocked(w, role), role, grantMessage(st.key.Room, d))
	st.removeWaiterLocked(w, why)
}

// removeWaiterLocked takes a waiter off the list and tells the moderators why. A decision taken while the waiter
// was reconnecting lives on in decided, so the reconnect still learns it.
func (st *memConf) removeWaiterLocked(w *waiter, why string) {
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
	st.dropWaiterLocked(w)
	if wasQueued {
		st.toModeratorsLocked(newMessage(evWaitingLeft, map[string]any{"email": w.ident.Email, "reason": why}))
	}
}

func (st *memConf) findLocked(email string) *waiter {
	for _, w := range st.queue {
		if strings.EqualFold(w.ident.Email, email) {
			return w
		}
	}
	return nil
}

func (st *memConf) waitingListLocked() []Participant {
	out := make([]Participant, 0, len(st.queue))
	for _, w := range st.queue {
		out = append(out, w.participant())
	}
	return out
}

func (st *memConf) historyLocked() []rawJSON { return st.chat.messages() }
