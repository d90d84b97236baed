package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"
)

// Admission is the fleet's decision on one session (or connection) of a user.
type Admission struct {
	// Admitted is false when the user already has limit live sessions and this one is not among them.
	Admitted bool
	// Count is the user's live sessions after the decision, fleet-wide.
	Count int
	// New is true when the session was not live before: it was opened, not refreshed.
	New bool
	// Evicted are the members a unique admission closed (Flussonic's X-Unique: the newest session wins). Every
	// member learns of them through the caller's kick, not from here.
	Evicted []string
}

// admitScript decides one session in one step, so that concurrent requests on any number of nodes never admit
// more than the limit. The user's sessions are a ZSET scored by last seen; entries idle for the idle timeout are
// dropped first. A live session is refreshed; a new one is admitted below the limit and refused at it:
// Flussonic's rule, the newest over the limit is refused, never an older one. With unique set the new session
// evicts every other.
//
//	KEYS: the user's zset. ARGV: member, now ms, idle ms, limit (0: none), unique (1/0).
//	Returns {admitted, count, new, evicted...}.
const admitScript = `
local now = tonumber(ARGV[2])
local idle = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - idle)
local out = {1, 0, 0}
if ARGV[5] == '1' then
  for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if m ~= ARGV[1] then
      redis.call('ZREM', KEYS[1], m)
      table.insert(out, m)
    end
  end
end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  -- GT: a node whose clock lags never moves a session back in time.
  redis.call('ZADD', KEYS[1], 'GT', now, ARGV[1])
else
  local n = redis.call('ZCARD', KEYS[1])
  if limit > 0 and n >= limit then
    out[1] = 0
    out[2] = n
    return out
  end
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  out[3] = 1
end
redis.call('PEXPIRE', KEYS[1], idle)
out[2] = redis.call('ZCARD', KEYS[1])
return out
`

const maxMemberBytes = 128

// SessionLimit is how one user's sessions are counted.
type SessionLimit struct {
	// Limit is the most live sessions a user may have; 0 counts without refusing.
	Limit int
	// Idle drops a session not refreshed for this long. It must match auth.sessions.idle_timeout.
	Idle time.Duration
	// Unique closes every other session of the user when a new one opens.
	Unique bool
}

// AdmitSession opens or refreshes the session member of user (a user id, or a token's fingerprint for tokens
// without one) and decides it against the user's limit across the fleet. member is a fingerprint (see
// SessionMember), never a raw token or address.
//
// Call it when a session opens, and then at most every RefreshInterval(idle) per session (see Throttle), never
// per request: the cached request path makes no Redis round trip. On ErrUnavailable count locally.
func (c *Client) AdmitSession(ctx context.Context, user, member string, l SessionLimit, now time.Time) (Admission, error) {
	if err := checkUser(user); err != nil {
		return Admission{}, err
	}
	return c.admitIn(ctx, "admit session", c.UserKey(user, "sessions"), member, l, now)
}

// EndSession drops a session from the user's count at once (it closed, was kicked or banned), instead of
// letting it idle out.
func (c *Client) EndSession(ctx context.Context, user, member string) error {
	if err := checkUser(user); err != nil {
		return err
	}
	return c.zrem(ctx, "end session", c.UserKey(user, "sessions"), member)
}

// AcquireConn counts a signaling connection of user against limit across the fleet, like AdmitSession: conn
// identifies the connection fleet-wide (node name and a local id), ttl drops it unless it is acquired again
// meanwhile, which the holder does every ttl/3 for a long-lived socket. A node that dies leaks its connections
// for ttl at most.
func (c *Client) AcquireConn(ctx context.Context, user, conn string, limit int, ttl time.Duration, now time.Time) (Admission, error) {
	if err := checkUser(user); err != nil {
		return Admission{}, err
	}
	return c.admitIn(ctx, "acquire connection", c.UserKey(user, "conns"), conn, SessionLimit{Limit: limit, Idle: ttl}, now)
}

// ReleaseConn uncounts a connection that closed.
func (c *Client) ReleaseConn(ctx context.Context, user, conn string) error {
	if err := checkUser(user); err != nil {
		return err
	}
	return c.zrem(ctx, "release connection", c.UserKey(user, "conns"), conn)
}

// maxUserBytes matches the longest user id authz accepts.
const maxUserBytes = 255

// checkUser refuses an empty user, whose key would be shared by every caller that forgot one.
func checkUser(u string) error {
	if u == "" || len(u) > maxUserBytes {
		return fmt.Errorf("user must be 1 to %d bytes", maxUserBytes)
	}
	return nil
}

func checkMember(m string) error {
	if m == "" || len(m) > maxMemberBytes {
		return fmt.Errorf("member must be 1 to %d bytes", maxMemberBytes)
	}
	return nil
}

func (c *Client) admitIn(ctx context.Context, op, key, member string, l SessionLimit, now time.Time) (Admission, error) {
	if err := checkMember(member); err != nil {
		return Admission{}, err
	}
	if l.Idle < time.Millisecond || l.Limit < 0 {
		return Admission{}, errors.New("limit needs an idle time of at least 1ms and a limit of 0 or more")
	}
	rc, err := c.conn()
	if err != nil {
		return Admission{}, err
	}
	unique := "0"
	if l.Unique {
		unique = "1"
	}
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	res, err := c.admit.Exec(ctx, rc, []string{key}, []string{member, strconv.FormatInt(now.UnixMilli(), 10),
		strconv.FormatInt(l.Idle.Milliseconds(), 10), strconv.Itoa(l.Limit), unique}).ToArray()
	if err = c.check(ctx, op, err); err != nil {
		return Admission{}, err
	}
	if len(res) < 3 {
		return Admission{}, fmt.Errorf("%s: short reply", op)
	}
	var a Admission
	var n [3]int64
	for i := range n {
		if n[i], err = res[i].AsInt64(); err != nil {
			return Admission{}, fmt.Errorf("%s: %w", op, err)
		}
	}
	a.Admitted, a.Count, a.New = n[0] == 1, int(n[1]), n[2] == 1
	for _, m := range res[3:] {
		s, err := m.ToString()
		if err != nil {
			return Admission{}, fmt.Errorf("%s: %w", op, err)
		}
		a.Evicted = append(a.Evicted, s)
	}
	return a, nil
}

func (c *Client) zrem(ctx context.Context, op, key, member string) error {
	if err := checkMember(member); err != nil {
		return err
	}
	rc, err := c.conn()
	if err != nil {
		return err
	}
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	return c.check(ctx, op, rc.Do(ctx, rc.B().Zrem().Key(key).Member(member).Build()).Error())
}

// SessionMember is the fleet's name for a viewer's session: a fingerprint of the device (address and user
// agent) and, unless soft, the channel. In soft mode a channel switch on one device stays one session, as
// Flussonic's soft limit counts it. The fingerprint is the same on every node and reveals neither address nor
// user agent.
func SessionMember(ip netip.Addr, userAgent, channel string, soft bool) string {
	h := sha256.New()
	a := ip.Unmap().As16()
	h.Write(a[:])
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(userAgent)))
	h.Write(n[:])
	h.Write([]byte(userAgent))
	if !soft {
		h.Write([]byte(channel))
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// RefreshInterval is how often a live session is refreshed in Redis for an idle timeout: a third of it, at most
// 5s (every 5s for the default 30s). Refreshing no more often keeps Redis off the request path; refreshing that
// often keeps a session that is still watched from idling out in Redis.
func RefreshInterval(idle time.Duration) time.Duration {
	return min(idle/3, 5*time.Second)
}

// Throttle lets a session through to Redis at most once per interval.
type Throttle struct{ every int64 }

// NewThrottle returns a Throttle for the interval, usually RefreshInterval(idle).
func NewThrottle(every time.Duration) Throttle { return Throttle{every: int64(every)} }

// Due reports whether the session whose last refresh (unix nanoseconds) is in last must be refreshed at now,
// and claims the refresh: of concurrent callers one gets true. It is one atomic load on the fast path, no
// allocation.
func (t Throttle) Due(last *atomic.Int64, now int64) bool {
	l := last.Load()
	// Fast path: refreshed recently.
	if now-l < t.every {
		return false
	}
	return last.CompareAndSwap(l, now)
}
