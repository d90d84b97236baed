package authz

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hlsedge/hlsedge/authz/token"
)

// SessionsConfig infers viewing sessions from HLS requests, which are stateless: a session is one user (or, for
// tokens without a user, one token) watching one channel from one address with one user agent.
type SessionsConfig struct {
	// Disabled stops session tracking: no sessions view, no per-user limits.
	Disabled bool `yaml:"disabled"`
	// IdleTimeout closes a session that made no request for this long. Default 30s, ten HLS segments.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxEntries bounds the sessions held. When full, a viewer with a session limit is refused (the limit could
	// not be kept) and others are served untracked, which the stats count. Default 100000.
	MaxEntries int `yaml:"max_entries"`
	// MaxPerUser is the concurrent-session limit for users whose token or backend sets none. The JWT claim
	// (jwt.claims.max_sessions) and a Flussonic backend's X-Max-Sessions take precedence. Over the limit, the
	// newest session is refused with 403. Default 0: no limit.
	MaxPerUser int `yaml:"max_per_user"`
	// Soft counts a channel switch on the same device (address and user agent) as the same session, not a new
	// one, as Flussonic's soft limit does for middlewares that reuse one token across channels.
	Soft bool `yaml:"soft"`
	// Log writes session open and close events to the log. Default true.
	Log *bool `yaml:"log"`
	// Webhook receives the same events as JSON.
	Webhook WebhookConfig `yaml:"webhook"`
}

const (
	defaultIdleTimeout = 30 * time.Second
	defaultMaxSessions = 100000
	sessionShards      = 32
	// lastSeenStep is how finely a session's last request is kept; idle timeouts are seconds.
	lastSeenStep = int64(10 * time.Millisecond)
	maxSessionUA = 512
)

func (c *SessionsConfig) setDefaults() {
	if c.IdleTimeout == 0 {
		c.IdleTimeout = defaultIdleTimeout
	}
	if c.MaxEntries == 0 {
		c.MaxEntries = defaultMaxSessions
	}
	c.Webhook.setDefaults()
}

func (c *SessionsConfig) validate() error {
	if c.Disabled {
		return nil
	}
	if c.IdleTimeout < time.Second {
		return errors.New("'auth.sessions.idle_timeout' must be at least 1s")
	}
	if c.MaxEntries < 0 || c.MaxEntries > 100_000_000 {
		return errors.New("'auth.sessions.max_entries' must be between 1 and 100000000")
	}
	if c.MaxPerUser < 0 {
		return errors.New("'auth.sessions.max_per_user' must not be negative")
	}
	return c.Webhook.validate()
}

// SessionInfo is one session as the admin API shows it.
type SessionInfo struct {
	ID        string    `json:"id"`
	User      string    `json:"user,omitempty"`
	Token     string    `json:"token,omitempty"` // fingerprint of a token without a user
	Channel   string    `json:"channel"`
	Group     string    `json:"group"`
	IP        string    `json:"ip"`
	UserAgent string    `json:"user_agent,omitempty"`
	Opened    time.Time `json:"opened"`
	LastSeen  time.Time `json:"last_seen"`
	Requests  int64     `json:"requests"`
	Bytes     int64     `json:"bytes"`
}

// SessionEvent is a session opening or closing, for the log and the webhook.
type SessionEvent struct {
	Event string `json:"event"` // open or close
	SessionInfo
	Closed time.Time `json:"closed,omitzero"`
	// Reason says why a session closed: idle, kicked, banned, unique (the user opened another one).
	Reason string `json:"reason,omitempty"`
}

// SessionFilter selects sessions; empty fields match everything.
type SessionFilter struct {
	Channel string
	// User matches the user id or the token fingerprint.
	User string
}

type session struct {
	key     uint64
	id      uint64
	owner   string
	user    string
	group   string
	ip      netip.Addr
	ua      string
	fp      token.Fingerprint
	opened  int64
	expires int64 // the token's expiry, unix seconds; 0: none
	closed  atomic.Bool

	// Guarded by the shard lock: a soft session follows the viewer's channel switches.
	channel string
	sids    [4]uint64
	// sidsVer counts the changes to sids, so that a TrackHint knows its session id is still among them.
	sidsVer atomic.Uint32

	// The counters every request writes sit on their own cache line. The fields above are read by every request
	// of the session (matches), and a write next to them would evict them from every other core serving the
	// session at that moment: several connections of one viewer, or of a household behind one address.
	_                     [64]byte
	last, requests, bytes atomic.Int64
}

type sessionShard struct {
	mu sync.RWMutex
	m  map[uint64]*session
	_  [40]byte // keeps neighbouring shard locks off one cache line
}

// sessionTable is the set of open sessions. The fast path (a request of a known session) takes one shard read
// lock and a few atomic adds; opening and closing also take the owners lock, which keeps per-user counts.
type sessionTable struct {
	seed    maphash.Seed
	shards  [sessionShards]sessionShard
	idle    int64
	max     int64
	soft    bool
	limit   int
	count   atomic.Int64
	ownMu   sync.Mutex
	owners  map[string][]*session
	log     *slog.Logger
	logOn   bool
	hook    *webhook
	onClose func(s *session, reason string, now time.Time)

	// channels counts the open sessions per channel, for the middlewares; guarded by ownMu.
	channels map[string]int

	opened, closed, refused, untracked atomic.Uint64
}

func newSessionTable(cfg SessionsConfig, log *slog.Logger) *sessionTable {
	t := &sessionTable{
		seed:   maphash.MakeSeed(),
		idle:   int64(cfg.IdleTimeout),
		max:    int64(cfg.MaxEntries),
		soft:   cfg.Soft,
		limit:  cfg.MaxPerUser,
		owners: map[string][]*session{},
		log:    log,
		logOn:  cfg.Log == nil || *cfg.Log,
	}
	for i := range t.shards {
		t.shards[i].m = map[uint64]*session{}
	}
	t.channels = map[string]int{}
	return t
}

func (t *sessionTable) key(owner string, ch []byte, ip netip.Addr, ua []byte) uint64 {
	return SessionKey(t.seed, owner, ch, ip, ua, t.soft)
}

// SessionKey hashes what makes a session: owner, channel (unless soft, where a session follows its viewer across
// channels), address and user agent, for a ViewerState's table of sessions. Parts are hashed on their own and the
// fixed-size results combined, so that no two inputs run together.
func SessionKey(seed maphash.Seed, owner string, ch []byte, ip netip.Addr, ua []byte, soft bool) uint64 {
	var b [40]byte
	a := ip.Unmap().As16()
	copy(b[:16], a[:])
	binary.LittleEndian.PutUint64(b[16:], maphash.String(seed, owner))
	if !soft {
		binary.LittleEndian.PutUint64(b[24:], maphash.Bytes(seed, ch))
	}
	binary.LittleEndian.PutUint64(b[32:], maphash.Bytes(seed, ua))
	return maphash.Bytes(seed, b[:])
}

// touch counts a request of the session at now.
func (s *session) touch(now int64) {
	if now-s.last.Load() >= lastSeenStep {
		// Read first: a session asked for on several cores at once does not write its line on every request.
		s.last.Store(now)
	}
	s.requests.Add(1)
}

// TrackHint is what a connection's last tracked request found, kept in its Memo: the session, and what made the
// table's lookup find it. A keep-alive player's next request is most often of the same session, and the table
// answers it from the hint, comparing the viewer with the session as the lookup would, instead of hashing the
// viewer and taking a shard lock that every core serving any session of the shard writes. A hint is taken only
// while its session is open, its session id still among the session's (sidsVer), and never for soft sessions,
// whose channel changes under the shard lock. One request at a time uses it; the zero TrackHint is empty.
type TrackHint struct {
	t   *sessionTable
	s   *session
	sid uint64
	ver uint32
}

// remember keeps s in the viewer's hint for its connection's next request.
func (t *sessionTable) remember(v *Viewer, s *session) {
	if h := v.Hint; h != nil && !t.soft {
		*h = TrackHint{t: t, s: s, sid: v.SessionID, ver: s.sidsVer.Load()}
	}
}

func (s *session) matches(owner string, ch []byte, ip netip.Addr, ua []byte, soft bool) bool {
	return s.owner == owner && s.ip == ip && s.ua == string(ua) && (soft || s.channel == string(ch))
}

// track counts a request of an allowed viewer into its session, opening one when needed. It refuses the
// newest session of a user over their limit; it returns no session for a viewer served untracked.
func (t *sessionTable) track(v *Viewer, now int64) (*session, error) {
	ua := v.UserAgent
	if len(ua) > maxSessionUA {
		ua = ua[:maxSessionUA]
	}
	ip := v.IP.Unmap()
	if h := v.Hint; h != nil && h.t == t && h.s != nil {
		// Fastest path: the connection's last request was of this very session, and nothing about it has
		// changed since (see TrackHint).
		if s := h.s; !s.closed.Load() && h.sid == v.SessionID && s.sidsVer.Load() == h.ver &&
			s.matches(v.Owner, v.Channel, ip, ua, false) {
			s.touch(now)
			return s, nil
		}
		h.s = nil
	}
	key := t.key(v.Owner, v.Channel, ip, ua)
	sh := &t.shards[key%sessionShards]
	// Fast path: a request of an open session.
	sh.mu.RLock()
	s := sh.m[key]
	if s != nil && s.matches(v.Owner, v.Channel, ip, ua, t.soft) {
		same := s.channel == string(v.Channel) && (s.sids[0] == v.SessionID || v.SessionID == 0)
		sh.mu.RUnlock()
		s.touch(now)
		if !same {
			t.follow(sh, s, v.Channel, v.SessionID)
		}
		t.remember(v, s)
		return s, nil
	}
	sh.mu.RUnlock()
	if s != nil {
		// Another session holds this key (a hash collision): serve this one untracked rather than merge them.
		t.untracked.Add(1)
		return nil, nil
	}
	return t.open(v, key, sh, ip, ua, now)
}

// follow records a soft session's channel switch and the session ids it has used, so that a kick covers them.
func (t *sessionTable) follow(sh *sessionShard, s *session, ch []byte, sid uint64) {
	t.ownMu.Lock()
	defer t.ownMu.Unlock()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s.channel != string(ch) {
		if sh.m[s.key] == s {
			// Still open: the channel counts follow it.
			t.uncount(s.channel)
			t.channels[string(ch)]++
		}
		s.channel = string(ch)
	}
	if sid != 0 && !slices.Contains(s.sids[:], sid) {
		copy(s.sids[1:], s.sids[:len(s.sids)-1])
		s.sids[0] = sid
		s.sidsVer.Add(1)
	}
}

// open is the slow path: check the user's limit and insert.
func (t *sessionTable) open(v *Viewer, key uint64, sh *sessionShard, ip netip.Addr, ua []byte, now int64) (*session, error) {
	limit := v.MaxSessions
	if limit == 0 {
		limit = t.limit
	}
	var evicted []*session
	t.ownMu.Lock()
	sh.mu.Lock()
	if s := sh.m[key]; s != nil {
		// Opened meanwhile by a concurrent request of the same viewer.
		sh.mu.Unlock()
		t.ownMu.Unlock()
		if !s.matches(v.Owner, v.Channel, ip, ua, t.soft) {
			return nil, nil
		}
		s.last.Store(now)
		s.requests.Add(1)
		return s, nil
	}
	list := t.owners[v.Owner]
	if v.Unique {
		// Flussonic's X-Unique: the user's newest session wins; the others close.
		evicted = append(evicted, list...)
	} else if limit > 0 {
		live := 0
		for _, o := range list {
			if now-o.last.Load() < t.idle {
				live++
			}
		}
		if live >= limit {
			sh.mu.Unlock()
			t.ownMu.Unlock()
			t.refused.Add(1)
			return nil, ErrSessionLimit
		}
	}
	if t.count.Load() >= t.max {
		sh.mu.Unlock()
		t.ownMu.Unlock()
		if limit > 0 {
			t.refused.Add(1)
			return nil, ErrSessionsFull
		}
		t.untracked.Add(1)
		return nil, nil
	}
	s := &session{
		key: key, id: v.SessionID, owner: v.Owner, user: v.User, group: v.Group, ip: ip, ua: string(ua), fp: v.Fingerprint,
		opened: now, channel: string(v.Channel), expires: v.Expires,
	}
	if s.id == 0 {
		s.id = key
	}
	s.sids[0] = v.SessionID
	s.last.Store(now)
	s.requests.Store(1)
	sh.m[key] = s
	t.owners[v.Owner] = append(list, s)
	t.channels[s.channel]++
	t.count.Add(1)
	sh.mu.Unlock()
	t.ownMu.Unlock()
	t.opened.Add(1)
	t.remember(v, s)
	t.emit("open", s, "", now)
	for _, o := range evicted {
		if t.remove(o) && t.onClose != nil {
			t.onClose(o, "unique", time.Unix(0, now))
		}
	}
	return s, nil
}

// remove takes a session out of the table; it reports whether this call did it.
func (t *sessionTable) remove(s *session) bool {
	if !s.closed.CompareAndSwap(false, true) {
		return false
	}
	t.ownMu.Lock()
	sh := &t.shards[s.key%sessionShards]
	sh.mu.Lock()
	if sh.m[s.key] == s {
		delete(sh.m, s.key)
		t.count.Add(-1)
		t.uncount(s.channel)
	}
	sh.mu.Unlock()
	if list := t.owners[s.owner]; list != nil {
		if i := slices.Index(list, s); i >= 0 {
			list = slices.Delete(list, i, i+1)
		}
		if len(list) == 0 {
			delete(t.owners, s.owner)
		} else {
			t.owners[s.owner] = list
		}
	}
	t.ownMu.Unlock()
	t.closed.Add(1)
	return true
}

// sweep closes sessions idle for longer than the idle timeout.
func (t *sessionTable) sweep(now time.Time) {
	n := now.UnixNano()
	var idle []*session
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		for _, s := range sh.m {
			if n-s.last.Load() >= t.idle {
				idle = append(idle, s)
			}
		}
		sh.mu.RUnlock()
	}
	for _, s := range idle {
		if t.remove(s) {
			t.emit("close", s, "idle", n)
		}
	}
}

// closeWhere closes the sessions f selects, for bans, and returns how many. f runs under the session's shard
// lock.
func (t *sessionTable) closeWhere(f func(*session) bool, reason string, now time.Time) int {
	var hit []*session
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		for _, s := range sh.m {
			if f(s) {
				hit = append(hit, s)
			}
		}
		sh.mu.RUnlock()
	}
	n := 0
	for _, s := range hit {
		if t.remove(s) {
			t.emit("close", s, reason, now.UnixNano())
			n++
		}
	}
	return n
}

// uncount takes a session off its channel's count; the caller holds ownMu.
func (t *sessionTable) uncount(ch string) {
	if t.channels[ch]--; t.channels[ch] <= 0 {
		delete(t.channels, ch)
	}
}

// clients counts the open sessions on a channel and overall.
func (t *sessionTable) clients(ch []byte) (stream, total int) {
	t.ownMu.Lock()
	stream = t.channels[string(ch)]
	t.ownMu.Unlock()
	return stream, int(t.count.Load())
}

// watching tells whether a session other than s holds the credential fp on channel ch.
func (t *sessionTable) watching(fp token.Fingerprint, ch string, s *session) bool {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		for _, o := range sh.m {
			if o != s && o.fp == fp && o.channel == ch {
				sh.mu.RUnlock()
				return true
			}
		}
		sh.mu.RUnlock()
	}
	return false
}

func (t *sessionTable) find(id string) *session {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		for _, s := range sh.m {
			if sessionIDString(s.id) == id {
				sh.mu.RUnlock()
				return s
			}
		}
		sh.mu.RUnlock()
	}
	return nil
}

func sessionIDString(id uint64) string { return fmt.Sprintf("%016x", id) }

// info snapshots a session; the caller holds its shard's lock.
func (s *session) info() SessionInfo {
	i := SessionInfo{
		ID: sessionIDString(s.id), User: s.user, Channel: s.channel, Group: s.group, IP: s.ip.String(),
		UserAgent: s.ua, Opened: time.Unix(0, s.opened).UTC(), LastSeen: time.Unix(0, s.last.Load()).UTC(),
		Requests: s.requests.Load(), Bytes: s.bytes.Load(),
	}
	if s.user == "" && s.fp != 0 {
		i.Token = s.fp.String()
	}
	return i
}

func (t *sessionTable) list(f SessionFilter) []SessionInfo {
	out := []SessionInfo{}
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		for _, s := range sh.m {
			if f.Channel != "" && s.channel != f.Channel {
				continue
			}
			if f.User != "" && s.user != f.User && s.owner != f.User {
				continue
			}
			out = append(out, s.info())
		}
		sh.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b SessionInfo) int { return a.Opened.Compare(b.Opened) })
	return out
}

// viewers counts the sessions active within the idle timeout, per channel.
func (t *sessionTable) viewers(now int64) map[string]int {
	out := map[string]int{}
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		for _, s := range sh.m {
			if now-s.last.Load() < t.idle {
				out[s.channel]++
			}
		}
		sh.mu.RUnlock()
	}
	return out
}

func (t *sessionTable) emit(ev string, s *session, reason string, now int64) {
	e := SessionEvent{Event: ev, SessionInfo: t.snapshot(s), Reason: reason}
	if ev == "close" {
		e.Closed = time.Unix(0, now).UTC()
	}
	if t.logOn {
		// The event is logged as attributes, so a JSON log handler writes it as one JSON object.
		t.log.Info("session "+ev, "id", e.ID, "user", e.User, "token", e.Token, "channel", e.Channel, "group", e.Group,
			"ip", e.IP, "user_agent", e.UserAgent, "requests", e.Requests, "bytes", e.Bytes, "reason", e.Reason)
	}
	if t.hook != nil {
		t.hook.send(e)
	}
}

// AddBytes counts response bytes into the session.
func (s *session) AddBytes(n int64) { s.bytes.Add(n) }

// snapshot is info under the shard lock.
func (t *sessionTable) snapshot(s *session) SessionInfo {
	sh := &t.shards[s.key%sessionShards]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return s.info()
}
