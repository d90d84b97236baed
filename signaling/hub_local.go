package signaling

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// What every hub keeps in this process of a conference run, whichever the hub: the sessions connected here and
// their roles, the waiting participants with a session here, the decisions it knows and the chat it saw, and the
// rules that move a session between roles. The memory hub adds the waiting list; the Redis hub adds the run's
// Redis state and what waits to be written there.

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

// sharedRun is where a run's shared state lives, as one hub keeps it: in this process, or in Redis with this
// node's copy as the fallback. Both are called with the run locked.
type sharedRun interface {
	// waitingListLocked returns the waiting list moderators see, in join order.
	waitingListLocked() []Participant
	// historyLocked returns the chat history a joiner gets, oldest first.
	historyLocked() []rawJSON
}

// hubConf is one conference run as this process knows it. A hub embeds it in its own run state, which it
// registers as shared.
type hubConf struct {
	key    ConfKey
	rcv    *receivers
	shared sharedRun

	mu      sync.Mutex
	dead    bool               // removed from the hub's table; callers look it up again
	members map[string]*member // by session ID
	// waiters are the participants waiting with a session here, or whose place this process keeps through the
	// grace period, by participant key.
	waiters map[string]*waiter
	// decided remembers admissions and rejections for this run, so that a reconnect, or a decision taken while
	// the participant was reconnecting, is honoured at once. Decisions are final, so a remembered one is never
	// stale.
	decided map[string]decision
	// chat is the chat this process delivered: the memory hub's history, the Redis hub's while Redis is
	// unreachable.
	chat chatRing
}

func newHubConf(k ConfKey, rcv *receivers, history int) hubConf {
	return hubConf{
		key:     k,
		rcv:     rcv,
		members: map[string]*member{},
		waiters: map[string]*waiter{},
		decided: map[string]decision{},
		chat:    chatRing{size: history},
	}
}

// member is a session as its conference's state knows it.
type member struct {
	role  Role
	key   string // participantKey
	ident Identity
	w     *waiter // while in RoleWaiting
}

// waiter is one participant in (or, while reconnecting, held for) the waiting room. A user with two tabs is one
// waiter with two sessions, so admitting them admits both.
type waiter struct {
	key      string
	ident    Identity
	joinedAt time.Time
	sessions []string // session IDs, in this process
	grace    timer
	// graceUntil is when a place kept for a reconnect lapses (Redis hub: restored after a Redis restart).
	graceUntil time.Time
	// queued is set while in the memory hub's visible waiting list.
	queued bool
}

type decision struct {
	admitted bool
	reason   string
}

func (w *waiter) participant() Participant {
	return Participant{Name: w.ident.Name, Email: w.ident.Email, Avatar: w.ident.Avatar, JoinedAt: w.joinedAt.UnixMilli()}
}

// lockLive locks the run state find returns, and finds it again when it was dropped before the lock was taken.
// find returns nil when there is no such run.
func lockLive[C any, P interface {
	*C
	base() *hubConf
}](find func() P) P {
	for {
		c := find()
		if c == nil {
			return nil
		}
		lc := c.base()
		lc.mu.Lock()
		if !lc.dead {
			return c
		}
		lc.mu.Unlock()
	}
}

func (c *hubConf) base() *hubConf { return c }

// addMemberLocked makes a session present in RoleNone.
func (c *hubConf) addMemberLocked(s Session) *member {
	m := &member{role: RoleNone, key: participantKey(&s.User), ident: s.User}
	c.members[s.ID] = m
	return m
}

// greetLocked gives a connecting moderator the waiting list and the chat history.
func (c *hubConf) greetLocked(s Session, m *member) {
	if !s.User.Moderator {
		return
	}
	m.role = RoleModerator
	ids := []string{s.ID}
	c.toSessions(ids, RoleModerator, newMessage(evWaitingRoomList, map[string]any{"participants": c.shared.waitingListLocked()}))
	c.sendHistoryLocked(ids, 0)
}

// leaveLocked forgets a session whose socket is gone. It returns its member (nil when it was not present) and,
// when it was the last session here of a waiting participant, their waiter, whose place the hub keeps or gives up.
func (c *hubConf) leaveLocked(id string) (*member, *waiter) {
	m := c.members[id]
	if m == nil {
		return nil, nil
	}
	delete(c.members, id)
	w := m.w
	if m.role != RoleWaiting || w == nil {
		return m, nil
	}
	w.sessions = removeString(w.sessions, id)
	if len(w.sessions) > 0 {
		return m, nil
	}
	return m, w
}

// awayLocked reports whether w is still held here with no session back: its grace period ending removes it.
func (c *hubConf) awayLocked(w *waiter) bool { return c.waiters[w.key] == w && len(w.sessions) == 0 }

// rejoinLocked answers a join_waiting_room from a session that needs no new decision: one already waiting,
// admitted or rejected, or whose participant was decided on already. It reports whether it answered, and returns
// the session's member, present from now on.
func (c *hubConf) rejoinLocked(s Session) (*member, bool, error) {
	m := c.members[s.ID]
	if m == nil {
		m = c.addMemberLocked(s)
	}
	ids := []string{s.ID}
	switch m.role {
	case RoleWaiting:
		c.toSessions(ids, 0, newMessage(evJoinWaitingResponse, map[string]any{"success": true, "waiting": true}))
		return m, true, nil
	case RoleAdmitted:
		c.grantLocked(ids, 0)
		return m, true, nil
	case RoleRejected:
		return m, true, ErrRejected
	}
	if d, ok := c.decided[m.key]; ok {
		c.applyDecisionLocked(m, ids, d)
		return m, true, nil
	}
	return m, false, nil
}

// seatLocked puts session id of m in w's place, which a reconnect inside the grace period finds again.
func (c *hubConf) seatLocked(m *member, w *waiter, id string) {
	c.waiters[w.key] = w
	if w.grace != nil {
		w.grace.Stop()
		w.grace = nil
	}
	w.sessions = append(w.sessions, id)
	m.role, m.w = RoleWaiting, w
}

// welcomeLocked tells sessions just seated in the waiting room so, and gives them the chat history.
func (c *hubConf) welcomeLocked(ids []string) {
	c.toSessions(ids, RoleWaiting, newMessage(evJoinWaitingResponse, map[string]any{"success": true, "waiting": true}))
	c.sendHistoryLocked(ids, 0)
}

// settleLocked gives w's sessions here their new role, forgets w and returns those sessions.
func (c *hubConf) settleLocked(w *waiter, role Role) []string {
	ids := w.sessions
	w.sessions = nil
	for _, id := range ids {
		if m := c.members[id]; m != nil {
			m.role, m.w = role, nil
		}
	}
	c.dropWaiterLocked(w)
	return ids
}

func (c *hubConf) dropWaiterLocked(w *waiter) {
	if w.grace != nil {
		w.grace.Stop()
		w.grace = nil
	}
	if c.waiters[w.key] == w {
		delete(c.waiters, w.key)
	}
}

// applyDecisionLocked answers a session whose participant was decided on already.
func (c *hubConf) applyDecisionLocked(m *member, ids []string, d decision) {
	if !d.admitted {
		m.role = RoleRejected
		c.toSessions(ids, RoleRejected, grantMessage(c.key.Room, d))
		return
	}
	m.role = RoleAdmitted
	c.sendHistoryLocked(ids, RoleAdmitted)
	c.grantLocked(ids, 0)
}

// chatLocked returns the chat_message a session sends, or ErrNotJoined when its role does not chat.
func (c *hubConf) chatLocked(from Session, text string, at time.Time) (*Message, error) {
	m := c.members[from.ID]
	if m == nil || !m.role.chats() {
		return nil, ErrNotJoined
	}
	id := &from.User
	return newMessage(evChatMessage, ChatMessage{
		From: ChatFrom{Name: id.Name, Email: id.Email, Avatar: id.Avatar, Moderator: id.Moderator},
		Text: text,
		TS:   at.UnixMilli(),
	}), nil
}

// toSessions delivers msg (when set) to the listed sessions, setting their role first (when not zero).
func (c *hubConf) toSessions(ids []string, role Role, msg *Message) {
	if len(ids) == 0 {
		return
	}
	c.rcv.deliver(&Delivery{Conf: c.key, To: ToSessions, Sessions: ids, Role: role, Msg: msg})
}

func (c *hubConf) grantLocked(ids []string, role Role) {
	c.toSessions(ids, role, grantMessage(c.key.Room, decision{admitted: true}))
}

// sendHistoryLocked sends the chat history, oldest first, setting the sessions' role first (when not zero).
func (c *hubConf) sendHistoryLocked(ids []string, role Role) {
	c.toSessions(ids, role, newMessage(evChatHistory, map[string]any{"messages": c.shared.historyLocked()}))
}

func grantMessage(room string, d decision) *Message {
	if d.admitted {
		return newMessage(joinRoomPrefix+room, map[string]any{"can_join": true})
	}
	return newMessage(joinRoomPrefix+room, map[string]any{"can_join": false, "reason": d.reason})
}

// chatRing keeps the last size chat messages.
type chatRing struct {
	size int
	msgs []*Message
	pos  int
}

func (r *chatRing) add(msg *Message) {
	if r.size <= 0 {
		return
	}
	if len(r.msgs) < r.size {
		r.msgs = append(r.msgs, msg)
		return
	}
	r.msgs[r.pos] = msg
	r.pos = (r.pos + 1) % r.size
}

// messages returns the kept messages' data, oldest first.
func (r *chatRing) messages() []rawJSON {
	out := make([]rawJSON, 0, len(r.msgs))
	for i := range r.msgs {
		out = append(out, rawJSON(r.msgs[(r.pos+i)%len(r.msgs)].Data))
	}
	return out
}

// rawJSON is an already encoded value, so that history is not encoded twice.
type rawJSON []byte

// MarshalJSON implements json.Marshaler.
func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

func removeString(s []string, v string) []string {
	for i, x := range s {
		if x == v {
			return append(s[:i:i], s[i+1:]...)
		}
	}
	return s
}
