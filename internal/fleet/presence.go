package fleet

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// Presence in a conference run: which sockets are connected to it anywhere (members), and which member keeps a
// waiting participant's place (holders). Both are leases: the holder renews them, and a member that dies lets
// them lapse instead of leaving ghosts behind.

// Held is what Hold found.
type Held struct {
	// Added are the participants that were not waiting before: the caller announces them.
	Added []string
	// Decided are the participants a decision was taken on: they are not put back in the waiting list, and the
	// caller applies the decision instead.
	Decided []Entry
}

// holdScript renews a member's leases in one step: its sockets in the run, and its waiting participants, which
// are put (back) in the waiting list unless a decision was taken on them meanwhile.
//
//	KEYS: members zset, waiting hash, present hash, decided hash.
//	ARGV: holder, until ms, ttl ms, n sessions, sessions..., then key, entry pairs.
//	Returns {"a", key} for each added participant and {"d", key, decision} for each decided one, flattened.
const holdScript = `
local n = tonumber(ARGV[4])
for i = 5, 4 + n do redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i]) end
if n > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
local out = {}
local any = false
for i = 5 + n, #ARGV, 2 do
  local k = ARGV[i]
  local d = redis.call('HGET', KEYS[4], k)
  if d then
    out[#out + 1] = 'd'; out[#out + 1] = k; out[#out + 1] = d
  else
    if redis.call('HSETNX', KEYS[2], k, ARGV[i + 1]) == 1 then
      out[#out + 1] = 'a'; out[#out + 1] = k
    end
    redis.call('HSET', KEYS[3], k .. '\n' .. ARGV[1], ARGV[2])
    any = true
  end
end
if any then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
return out
`

// sweepScript takes waiting participants out of the list: with force the given ones, else those no holder
// keeps past now. Lapsed holds are pruned on the way.
//
//	KEYS: waiting hash, present hash. ARGV: now ms, force (1/0), keys... (none: everyone waiting).
//	Returns key, entry pairs of the participants taken out.
const sweepScript = `
local now = tonumber(ARGV[1])
local force = ARGV[2] == '1'
local live, holds = {}, {}
local fields = redis.call('HGETALL', KEYS[2])
for i = 1, #fields, 2 do
  local f = fields[i]
  local k = string.match(f, '^(.*)\n[^\n]*$')
  if k then
    if (tonumber(fields[i + 1]) or 0) > now then
      live[k] = true
      holds[k] = holds[k] or {}
      table.insert(holds[k], f)
    else
      redis.call('HDEL', KEYS[2], f)
    end
  end
end
local keys = {}
if #ARGV > 2 then
  for i = 3, #ARGV do keys[#keys + 1] = ARGV[i] end
else
  keys = redis.call('HKEYS', KEYS[1])
end
local out = {}
for _, k in ipairs(keys) do
  if force or not live[k] then
    local e = redis.call('HGET', KEYS[1], k)
    if e then
      redis.call('HDEL', KEYS[1], k)
      out[#out + 1] = k; out[#out + 1] = e
    end
    for _, f in ipairs(holds[k] or {}) do redis.call('HDEL', KEYS[2], f) end
  end
end
return out
`

// settleScript records a decision unless one was taken already, and takes the participant out of the waiting
// list either way: the first decision of a run stands, even when two members took theirs while cut off from
// each other.
//
//	KEYS: waiting hash, decided hash. ARGV: key, decision, ttl ms. Returns the decision that stands.
const settleScript = `
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return redis.call('HGET', KEYS[2], ARGV[1])
`

// maxHoldArgs bounds one Hold's sessions and waiting participants together, so that one script call never
// grows without limit: Hold splits larger calls.
const maxHoldArgs = 1000

// Hold renews, until the given time, the leases of holder (a member's unique name) on the run: its connected
// sessions, and its waiting participants (key and entry), which are put in the waiting list unless they are
// there already or a decision was taken on them. A holder calls it when a participant starts waiting with it,
// and then every lease period or so for everything it holds.
func (r *Room) Hold(ctx context.Context, holder string, until time.Time, sessions []string, waiters []Entry) (Held, error) {
	var out Held
	if holder == "" {
		return out, errors.New("hold needs a holder")
	}
	for len(sessions) > 0 || len(waiters) > 0 {
		ns := min(len(sessions), maxHoldArgs)
		nw := min(len(waiters), maxHoldArgs-ns)
		if err := r.hold(ctx, holder, until, sessions[:ns], waiters[:nw], &out); err != nil {
			return out, err
		}
		sessions, waiters = sessions[ns:], waiters[nw:]
	}
	return out, nil
}

func (r *Room) hold(ctx context.Context, holder string, until time.Time, sessions []string, waiters []Entry, out *Held) error {
	rc, err := r.c.conn()
	if err != nil {
		return err
	}
	args := make([]string, 0, 4+len(sessions)+2*len(waiters))
	args = append(args, holder, strconv.FormatInt(until.UnixMilli(), 10), strconv.FormatInt(r.ttl, 10), strconv.Itoa(len(sessions)))
	args = append(args, sessions...)
	for _, w := range waiters {
		args = append(args, w.Key, string(w.Data))
	}
	ctx, cancel := r.c.timeout(ctx)
	defer cancel()
	res, err := r.c.hold.Exec(ctx, rc, []string{r.members, r.waiting, r.present, r.decided}, args).AsStrSlice()
	if err = r.c.check(ctx, "hold", err); err != nil {
		return err
	}
	for i := 0; i < len(res); {
		switch {
		case res[i] == "a" && i+1 < len(res):
			out.Added = append(out.Added, res[i+1])
			i += 2
		case res[i] == "d" && i+2 < len(res):
			out.Decided = append(out.Decided, Entry{Key: res[i+1], Data: []byte(res[i+2])})
			i += 3
		default:
			return fmt.Errorf("hold: malformed reply at %d", i)
		}
	}
	return nil
}

// Release ends holder's hold on a waiting participant at until: a participant whose last socket went away
// keeps their place for a grace period, and Sweep takes them out once no member holds them any longer.
func (r *Room) Release(ctx context.Context, holder, key string, until time.Time) error {
	_, err := r.multi(ctx, "release", func(rc rueidis.Client) rueidis.Commands {
		return rueidis.Commands{
			rc.B().Hset().Key(r.present).FieldValue().FieldValue(key+"\n"+holder, strconv.FormatInt(until.UnixMilli(), 10)).Build(),
			rc.B().Pexpire().Key(r.present).Milliseconds(r.ttl).Build(),
		}
	})
	return err
}

// Sweep takes out of the waiting list the given participants (nil: everyone waiting) whom no member holds past
// now, and returns them with their entries. Of several members sweeping at once, each participant is returned
// to one: the one that tells the moderators.
func (r *Room) Sweep(ctx context.Context, now time.Time, keys []string) ([]Entry, error) {
	return r.sweep(ctx, "sweep", now, false, keys)
}

// Unwait takes one participant out of the waiting list whoever holds them, and reports whether they were in it.
func (r *Room) Unwait(ctx context.Context, key string, now time.Time) (bool, error) {
	out, err := r.sweep(ctx, "unwait", now, true, []string{key})
	return len(out) > 0, err
}

func (r *Room) sweep(ctx context.Context, op string, now time.Time, force bool, keys []string) ([]Entry, error) {
	rc, err := r.c.conn()
	if err != nil {
		return nil, err
	}
	f := "0"
	if force {
		f = "1"
	}
	args := append([]string{strconv.FormatInt(now.UnixMilli(), 10), f}, keys...)
	ctx, cancel := r.c.timeout(ctx)
	defer cancel()
	res, err := r.c.sweep.Exec(ctx, rc, []string{r.waiting, r.present}, args).AsStrSlice()
	if err = r.c.check(ctx, op, err); err != nil {
		return nil, err
	}
	if len(res)%2 != 0 {
		return nil, fmt.Errorf("%s: malformed reply", op)
	}
	out := make([]Entry, 0, len(res)/2)
	for i := 0; i < len(res); i += 2 {
		out = append(out, Entry{Key: res[i], Data: []byte(res[i+1])})
	}
	return out, nil
}

// Settle records decision on a participant unless one was taken already, takes them out of the waiting list,
// and returns the decision that stands. A member that decided while cut off from Redis settles its decisions
// when Redis returns; a conference without a waiting room settles an admission at once.
func (r *Room) Settle(ctx context.Context, key string, decision []byte) ([]byte, error) {
	rc, err := r.c.conn()
	if err != nil {
		return nil, err
	}
	ctx, cancel := r.c.timeout(ctx)
	defer cancel()
	res := r.c.settle.Exec(ctx, rc, []string{r.waiting, r.decided}, []string{key, string(decision), strconv.FormatInt(r.ttl, 10)})
	return r.c.optionalBytes(ctx, "settle", res)
}

// RemoveMember forgets a session whose socket closed.
func (r *Room) RemoveMember(ctx context.Context, session string) error {
	_, err := r.multi(ctx, "remove member", func(rc rueidis.Client) rueidis.Commands {
		return rueidis.Commands{rc.B().Zrem().Key(r.members).Member(session).Build()}
	})
	return err
}

// Members counts the sessions connected to the run on every member, as of now; lapsed ones are pruned.
func (r *Room) Members(ctx context.Context, now time.Time) (int, error) {
	ms := strconv.FormatInt(now.UnixMilli(), 10)
	res, err := r.multi(ctx, "count members", func(rc rueidis.Client) rueidis.Commands {
		return rueidis.Commands{
			rc.B().Zremrangebyscore().Key(r.members).Min("-inf").Max(ms).Build(),
			rc.B().Zcard().Key(r.members).Build(),
		}
	})
	if err != nil {
		return 0, err
	}
	n, err := res[1].AsInt64()
	return int(n), err
}
