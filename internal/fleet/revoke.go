package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Revocation is one ban or kick as the fleet shares it. The fleet does not read Data: the caller encodes what
// it needs (a user id, an address, a token's fingerprint), and never a raw token.
type Revocation struct {
	// ID names the revocation fleet-wide; a second Revoke with the same ID replaces the first. 1 to 256 bytes,
	// no control characters. Callers keep kinds apart with a prefix ("ban:", "kick:").
	ID string
	// Data is the caller's encoding, at most 64 KiB.
	Data []byte
	// Expires ends the revocation; zero never does. Every member drops it then by itself: expiry is not
	// published.
	Expires time.Time
}

// RevocationEvent is a revocation stored or deleted by some member.
type RevocationEvent struct {
	Revocation
	// Deleted is true when the revocation was lifted (Unrevoke); only ID is set then.
	Deleted bool
	// Node is the member that made the change; members receive their own events too.
	Node string
}

// ErrFull is returned when a bounded fleet list (revocations) is full.
var ErrFull = errors.New("fleet list full")

const (
	maxRevocationID   = 256
	maxRevocationData = 64 << 10
)

// revokeScript stores a revocation and publishes it in one step, so that no member can load the set without
// also receiving later changes. Expired entries are pruned first (pruneLapsed).
//
//	KEYS: hash, expiry zset. ARGV: id, expiry ms (0: never), stored value, now ms, max entries, channel, event.
const revokeScript = `local now = ARGV[4]` + pruneLapsed + `
local max = tonumber(ARGV[5])
if max > 0 and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= max then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
local exp = ARGV[2]
if exp == '0' then exp = '+inf' end
redis.call('ZADD', KEYS[2], exp, ARGV[1])
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
`

// unrevokeScript deletes a revocation and publishes the deletion.
//
//	KEYS: hash, expiry zset. ARGV: id, channel, event.
const unrevokeScript = `
local n = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if n > 0 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return n
`

func (c *Client) revokeKeys() (hash, exp, channel string) {
	hash = c.tagged("revoke", "", "")
	return hash, hash + ":exp", hash + ":ch"
}

func checkRevocationID(id string) error {
	if id == "" || len(id) > maxRevocationID || strings.ContainsFunc(id, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("revocation id must be 1 to %d bytes without control characters", maxRevocationID)
	}
	return nil
}

// Revoke stores r for the fleet and publishes it to every member, atomically. max bounds the stored set (0: no
// bound); a new ID beyond it fails with ErrFull. now is the caller's clock, used to prune expired entries.
func (c *Client) Revoke(ctx context.Context, r Revocation, max int, now time.Time) error {
	if err := checkRevocationID(r.ID); err != nil {
		return err
	}
	if len(r.Data) > maxRevocationData {
		return fmt.Errorf("revocation data must be at most %d bytes", maxRevocationData)
	}
	var exp int64
	if !r.Expires.IsZero() {
		if !r.Expires.After(now) {
			return errors.New("revocation already expired")
		}
		exp = r.Expires.UnixMilli()
	}
	rc, err := c.conn()
	if err != nil {
		return err
	}
	hash, zset, ch := c.revokeKeys()
	e := strconv.FormatInt(exp, 10)
	value := e + "\n" + string(r.Data)
	event := "put\n" + c.node + "\n" + r.ID + "\n" + value
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	n, err := c.revoke.Exec(ctx, rc, []string{hash, zset},
		[]string{r.ID, e, value, strconv.FormatInt(now.UnixMilli(), 10), strconv.Itoa(max), ch, event}).AsInt64()
	if err = c.check(ctx, "revoke", err); err != nil {
		return err
	}
	if n == 0 {
		return ErrFull
	}
	return nil
}

// Unrevoke lifts a revocation fleet-wide; it reports whether there was one.
func (c *Client) Unrevoke(ctx context.Context, id string) (bool, error) {
	if err := checkRevocationID(id); err != nil {
		return false, err
	}
	rc, err := c.conn()
	if err != nil {
		return false, err
	}
	hash, zset, ch := c.revokeKeys()
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	n, err := c.unrevoke.Exec(ctx, rc, []string{hash, zset}, []string{id, ch, "del\n" + c.node + "\n" + id}).AsInt64()
	if err = c.check(ctx, "unrevoke", err); err != nil {
		return false, err
	}
	return n > 0, nil
}

// Revocations loads the fleet's current set, the expired entries left out. Subscribe first (then wait for
// Ready), load second, so that nothing falls between the two; OnResync callbacks run when that is already so.
func (c *Client) Revocations(ctx context.Context, now time.Time) ([]Revocation, error) {
	hash, _, _ := c.revokeKeys()
	m, err := c.hgetall(ctx, "load revocations", hash)
	if err != nil {
		return nil, err
	}
	out := make([]Revocation, 0, len(m))
	for id, v := range m {
		r, err := parseRevocation(id, v)
		if err != nil {
			c.m.decodeErrors.Inc()
			continue
		}
		if !r.Expires.IsZero() && !r.Expires.After(now) {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// parseRevocation reads the stored value: expiry ms, newline, data.
func parseRevocation(id, v string) (Revocation, error) {
	e, data, ok := strings.Cut(v, "\n")
	if !ok {
		return Revocation{}, errors.New("revocation without expiry")
	}
	ms, err := strconv.ParseInt(e, 10, 64)
	if err != nil || ms < 0 {
		return Revocation{}, fmt.Errorf("bad revocation expiry %q", e)
	}
	r := Revocation{ID: id, Data: []byte(data)}
	if ms > 0 {
		r.Expires = time.UnixMilli(ms)
	}
	return r, nil
}

// SubscribeRevocations calls fn with every revocation stored or lifted by any member, this one included. A
// message that does not decode is counted and dropped.
func (c *Client) SubscribeRevocations(fn func(RevocationEvent)) *Subscription {
	_, _, ch := c.revokeKeys()
	return c.Subscribe(ch, func(p []byte) error {
		ev, err := parseRevocationEvent(p)
		if err != nil {
			return err
		}
		fn(ev)
		return nil
	})
}

// parseRevocationEvent reads "put\nNODE\nID\nEXPIRY\nDATA" or "del\nNODE\nID".
func parseRevocationEvent(p []byte) (RevocationEvent, error) {
	op, rest, _ := bytes.Cut(p, []byte{'\n'})
	node, rest, ok := bytes.Cut(rest, []byte{'\n'})
	if !ok || len(node) == 0 {
		return RevocationEvent{}, errors.New("revocation event without node")
	}
	switch string(op) {
	case "del":
		if checkRevocationID(string(rest)) != nil {
			return RevocationEvent{}, errors.New("revocation event with a bad id")
		}
		return RevocationEvent{Revocation: Revocation{ID: string(rest)}, Deleted: true, Node: string(node)}, nil
	case "put":
		id, v, ok := bytes.Cut(rest, []byte{'\n'})
		if !ok || checkRevocationID(string(id)) != nil {
			return RevocationEvent{}, errors.New("revocation event with a bad id")
		}
		r, err := parseRevocation(string(id), string(v))
		if err != nil {
			return RevocationEvent{}, err
		}
		return RevocationEvent{Revocation: r, Node: string(node)}, nil
	}
	return RevocationEvent{}, fmt.Errorf("unknown revocation event %.8q", op)
}
