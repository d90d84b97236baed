package redisstate

import (
	"cmp"
	"context"
	"errors"
	"hash/maphash"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/internal/fleet"
)

// tracked is one session with a limit as this node counts it in the fleet: the user's sorted set in Redis holds
// its fingerprint (member), refreshed at most every fleet.RefreshInterval.
type tracked struct {
	key    uint64
	owner  string
	ip     netip.Addr
	ua     string
	ch     string // empty in soft mode: a channel switch stays one session
	member string
	sid    uint64 // the in-memory session's id, to close it
	limit  int
	opened int64

	last    atomic.Int64 // unix nanos of the last refresh claimed (fleet.Throttle)
	seen    atomic.Int64 // unix nanos of the last request
	refused atomic.Bool  // the fleet refused it: its requests are refused until a refresh admits it
	gone    atomic.Bool  // taken out of the table
}

func (t *tracked) matches(owner string, ch []byte, ip netip.Addr, ua []byte, soft bool) bool {
	return t.owner == owner && t.ip == ip && t.ua == string(ua) && (soft || t.ch == string(ch))
}

const tableShards = 32

type tableShard struct {
	mu sync.RWMutex
	m  map[uint64]*tracked
	_  [40]byte // keeps neighbouring shard locks off one cache line
}

// table is the sessions this node refreshes in the fleet, sharded like authz's session table.
type table struct {
	seed   maphash.Seed
	shards [tableShards]tableShard
	soft   bool
	max    int64
	count  atomic.Int64
}

func newTable(max int, soft bool) *table {
	t := &table{seed: maphash.MakeSeed(), soft: soft, max: int64(max)}
	for i := range t.shards {
		t.shards[i].m = map[uint64]*tracked{}
	}
	return t
}

// key is authz.SessionKey with this table's seed and mode.
func (t *table) key(owner string, ch []byte, ip netip.Addr, ua []byte) uint64 {
	return authz.SessionKey(t.seed, owner, ch, ip, ua, t.soft)
}

func (t *table) get(key uint64) *tracked {
	sh := &t.shards[key%tableShards]
	sh.mu.RLock()
	x := sh.m[key]
	sh.mu.RUnlock()
	return x
}

// put inserts x unless the key is taken, and returns what the table holds for the key; nil when it is full.
func (t *table) put(x *tracked) *tracked {
	sh := &t.shards[x.key%tableShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old := sh.m[x.key]; old != nil {
		return old
	}
	if t.count.Load() >= t.max {
		return nil
	}
	sh.m[x.key] = x
	t.count.Add(1)
	return x
}

func (t *table) remove(x *tracked) {
	if x.gone.Swap(true) {
		return
	}
	sh := &t.shards[x.key%tableShards]
	sh.mu.Lock()
	if sh.m[x.key] == x {
		delete(sh.m, x.key)
		t.count.Add(-1)
	}
	sh.mu.Unlock()
}

// each calls f for every session, outside the locks.
func (t *table) each(f func(*tracked)) {
	var all []*tracked
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		for _, x := range sh.m {
			all = append(all, x)
		}
		sh.mu.RUnlock()
	}
	for _, x := range all {
		f(x)
	}
}

// sweep forgets the sessions without a request for idle: they idle out of Redis by themselves.
func (t *table) sweep(now, idle int64) {
	t.each(func(x *tracked) {
		if now-x.seen.Load() >= idle {
			t.remove(x)
		}
	})
}

// limitOf is the viewer's limit: the token's or middleware's, else 'auth.sessions.max_per_user'.
func (s *State) limitOf(v *authz.Viewer) int {
	if v.MaxSessions > 0 {
		return v.MaxSessions
	}
	return s.perUser
}

// Track counts an allowed request into its session. A session with a limit (or a middleware's X-Unique) is
// also counted in the fleet: its first request asks Redis, in one atomic script, whether the user's sessions on
// every node leave room for it; later requests answer from memory and hand a refresh to the background at most
// every few seconds. While Redis is unreachable the limit is counted on this node alone.
func (s *State) Track(v authz.Viewer, now int64) (authz.Session, error) {
	limit := s.limitOf(&v)
	if s.sessionsOff || (limit == 0 && !v.Unique) {
		return s.mem.Track(v, now)
	}
	ua := v.UserAgent
	if len(ua) > maxUA {
		ua = ua[:maxUA]
	}
	ip := v.IP.Unmap()
	key := s.tab.key(v.Owner, v.Channel, ip, ua)
	x := s.tab.get(key)
	if x != nil && x.matches(v.Owner, v.Channel, ip, ua, s.soft) {
		// Fast path: a session the fleet already decided; no Redis round trip.
		x.seen.Store(now)
		if !s.fc.Degraded() && s.throttle.Due(&x.last, now) {
			s.enqueue(x, now)
		}
		if x.refused.Load() {
			return nil, authz.ErrSessionLimit
		}
		return s.mem.Track(v, now)
	}
	if x != nil {
		// Another session holds the key (a hash collision): count this one on this node only.
		return s.mem.Track(v, now)
	}
	return s.open(&v, key, ip, ua, limit, now)
}

// open is the slow path: the fleet decides the session's first request.
func (s *State) open(v *authz.Viewer, key uint64, ip netip.Addr, ua []byte, limit int, now int64) (authz.Session, error) {
	x := &tracked{
		key: key, owner: v.Owner, ip: ip, ua: string(ua), member: fleet.SessionMember(ip, string(ua), string(v.Channel), s.soft),
		sid: v.SessionID, limit: limit, opened: now,
	}
	if !s.soft {
		x.ch = string(v.Channel)
	}
	x.last.Store(now)
	x.seen.Store(now)
	if s.tab.count.Load() >= s.tab.max {
		// As many sessions as 'auth.sessions.max_entries': the in-memory state refuses or serves it untracked.
		return s.mem.Track(*v, now)
	}
	a, err := s.fc.AdmitSession(s.ctx, v.Owner, x.member, fleet.SessionLimit{Limit: limit, Idle: s.idle, Unique: v.Unique}, time.Unix(0, now))
	switch {
	case err == nil && !a.Admitted:
		s.m.refused.Inc()
		// Kept as refused, so that a viewer who retries costs Redis one call per refresh interval, not one per
		// request.
		x.refused.Store(true)
		s.tab.put(x)
		return nil, authz.ErrSessionLimit
	case err == nil:
		s.m.admitted.Inc()
		if len(a.Evicted) > 0 {
			s.evicted(v.Owner, a.Evicted)
		}
	default:
		if !errors.Is(err, fleet.ErrUnavailable) {
			s.log.Warn("authz: fleet admission failed; counting on this node", "err", err)
		}
		// Local counting: the in-memory state applies the limit to this node's sessions, and the re-sync
		// re-admits this one in the fleet when Redis returns.
		s.m.local.Inc()
	}
	sess, err := s.mem.Track(*v, now)
	if err != nil {
		if a.New {
			// The fleet counted a session this node refused after all (its own count, ahead of a Redis that
			// restarted empty): give the place back.
			s.endMember(v.Owner, x.member)
		}
		if a.Admitted {
			// Kept as refused, so that the next requests ask the fleet again no more often than a refresh.
			x.refused.Store(true)
			s.tab.put(x)
		}
		return nil, err
	}
	if got := s.tab.put(x); got != nil && got != x && got.refused.Load() {
		// A concurrent first request was refused meanwhile; the fleet's newer answer (this one) wins.
		got.refused.Store(false)
	}
	return sess, nil
}

// refreshJob is one session's refresh at the time of the request that claimed it.
type refreshJob struct {
	x   *tracked
	now int64
}

// enqueue hands a refresh to the workers; a full queue drops it (the session is refreshed on its next due
// request, long before it idles out in Redis).
func (s *State) enqueue(x *tracked, now int64) {
	select {
	case s.refreshQ <- refreshJob{x, now}:
	default:
		s.m.refreshDropped.Inc()
	}
}

func (s *State) refresher() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case j := <-s.refreshQ:
			_ = s.refresh(s.ctx, j.x, j.now)
		}
	}
}

// refresh tells the fleet the session is still watched, or asks again for a session it refused. A session that
// dropped out of the user's set (it idled out in Redis, or Redis restarted empty) is admitted again by the same
// rule as a new one: refused when the user's other sessions fill the limit.
func (s *State) refresh(ctx context.Context, x *tracked, now int64) error {
	if x.gone.Load() {
		return nil
	}
	a, err := s.fc.AdmitSession(ctx, x.owner, x.member, fleet.SessionLimit{Limit: x.limit, Idle: s.idle}, time.Unix(0, now))
	if err != nil {
		s.m.refreshFail.Inc()
		return err
	}
	switch {
	case !a.Admitted:
		s.m.refreshRefused.Inc()
		if !x.refused.Swap(true) {
			s.log.Info("authz: session over the user's limit in the fleet; refused from its next request",
				"id", sessionIDString(x.sid), "sessions", a.Count, "limit", x.limit)
			s.notify()
		}
	default:
		s.m.refreshed.Inc()
		if x.refused.Swap(false) {
			s.notify()
		}
	}
	return nil
}

// readmitAll re-admits every session this node counts, oldest first, after Redis returned: sessions admitted
// locally meanwhile, and every other one in case Redis lost them. It reports whether every one got the
// fleet's answer; when Redis failed again meanwhile, the next re-sync does it all again.
func (s *State) readmitAll(ctx context.Context) bool {
	var all []*tracked
	s.tab.each(func(x *tracked) { all = append(all, x) })
	slices.SortFunc(all, func(a, b *tracked) int {
		if a.refused.Load() != b.refused.Load() {
			// Sessions being watched first: a refused one is the newest over the limit by definition.
			if a.refused.Load() {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.opened, b.opened)
	})
	// A few at a time, in that order: the calls share round trips on the pipelined connection, and a node
	// with many sessions is back in line in a moment rather than one round trip per session.
	now := s.clock().UnixNano()
	sem := make(chan struct{}, readmitConcurrency)
	var wg sync.WaitGroup
	var failed atomic.Bool
	for _, x := range all {
		if ctx.Err() != nil || s.fc.Degraded() || failed.Load() {
			failed.Store(true)
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			x.last.Store(now)
			if err := s.refresh(ctx, x, now); errors.Is(err, fleet.ErrUnavailable) {
				failed.Store(true)
			}
		}()
	}
	wg.Wait()
	return !failed.Load()
}

const readmitConcurrency = 8

// evicted asks every node to close the user's sessions a unique admission replaced. This node's own were
// closed by the in-memory state already.
func (s *State) evicted(owner string, members []string) {
	s.evict(owner, members, s.clock())
	msg := control{op: "evict", node: s.node, members: members, owner: owner}.encode()
	if err := s.fc.Publish(s.ctx, s.ctlCh, msg); err != nil {
		s.log.Warn("authz: telling the fleet of a unique session failed", "err", err)
	}
}

// evict closes owner's sessions held here whose fingerprint is among members, and keeps them closed for an
// idle period, as authz does with the sessions a unique one replaces.
func (s *State) evict(owner string, members []string, now time.Time) {
	s.tab.each(func(x *tracked) {
		if x.owner != owner || !slices.Contains(members, x.member) {
			return
		}
		s.tab.remove(x)
		if _, _, err := s.mem.CloseSession(sessionIDString(x.sid), "unique", now, now.Add(s.idle).UnixNano(), true); err == nil {
			s.log.Info("authz: session replaced by the user's newer one on another node", "id", sessionIDString(x.sid))
		}
	})
}

// endSession frees a closed session's place in its user's count at once, rather than when it idles out.
func (s *State) endSession(info authz.SessionInfo) {
	owner := info.User
	if owner == "" {
		owner = info.Token
	}
	if owner == "" {
		owner = info.ID
	}
	ip, err := netip.ParseAddr(info.IP)
	if err != nil {
		return
	}
	ua := info.UserAgent
	if len(ua) > maxUA {
		ua = ua[:maxUA]
	}
	member := fleet.SessionMember(ip, ua, info.Channel, s.soft)
	s.tab.each(func(x *tracked) {
		if x.owner == owner && x.member == member {
			s.tab.remove(x)
		}
	})
	s.endMember(owner, member)
}

func (s *State) endMember(owner, member string) {
	if s.fc.Degraded() {
		return
	}
	if err := s.fc.EndSession(s.ctx, owner, member); err != nil && !errors.Is(err, fleet.ErrUnavailable) {
		s.log.Debug("authz: ending a session in the fleet", "err", err)
	}
}

// validSessionID tells whether id has the admin API's form of a session id: 16 lowercase hex digits.
func validSessionID(id string) bool {
	if len(id) != 16 || strings.ToLower(id) != id {
		return false
	}
	_, err := strconv.ParseUint(id, 16, 64)
	return err == nil
}
