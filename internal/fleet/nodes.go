package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// NodeInfo is what one member announced about itself, for fleet-wide admin views (a node column, per-node
// stats).
type NodeInfo struct {
	Node string `json:"node"`
	// Info is the member's own encoding (its stats, its version).
	Info []byte `json:"info"`
	// Expires is when the entry lapses unless announced again.
	Expires time.Time `json:"expires"`
}

const maxNodeInfoBytes = 64 << 10

// pruneLapsed starts a script on a HASH (KEYS[1]) whose entries' expiry times stand in a ZSET beside it
// (KEYS[2]), since Redis 7.0 has no per-field expiry: it drops the entries lapsed at the Lua variable now, at most
// 1000 a call so that no call runs long.
const pruneLapsed = `
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(old) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
`

// announceScript stores one member's entry and prunes the lapsed ones.
//
//	KEYS: hash, expiry zset. ARGV: node, stored value, now ms, expiry ms.
const announceScript = `local now = ARGV[3]` + pruneLapsed + `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return 1
`

func (c *Client) nodesKeys() (hash, exp string) {
	hash = c.tagged("nodes", "", "")
	return hash, hash + ":exp"
}

// Announce tells the fleet this member is alive, with info, until now+ttl. Members call it every few seconds
// with a ttl of two or three periods, so that a member that died drops out of Nodes by itself.
func (c *Client) Announce(ctx context.Context, info []byte, ttl time.Duration, now time.Time) error {
	if len(info) > maxNodeInfoBytes {
		return fmt.Errorf("node info must be at most %d bytes", maxNodeInfoBytes)
	}
	if ttl < time.Millisecond {
		return errors.New("node info needs a ttl of at least 1ms")
	}
	rc, err := c.conn()
	if err != nil {
		return err
	}
	hash, exp := c.nodesKeys()
	e := strconv.FormatInt(now.Add(ttl).UnixMilli(), 10)
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	err = c.announce.Exec(ctx, rc, []string{hash, exp},
		[]string{c.node, e + "\n" + string(info), strconv.FormatInt(now.UnixMilli(), 10), e}).Error()
	return c.check(ctx, "announce", err)
}

// Leave takes this member out of Nodes at once, on a clean shutdown.
func (c *Client) Leave(ctx context.Context) error {
	rc, err := c.conn()
	if err != nil {
		return err
	}
	hash, exp := c.nodesKeys()
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	for _, r := range rc.DoMulti(ctx,
		rc.B().Hdel().Key(hash).Field(c.node).Build(),
		rc.B().Zrem().Key(exp).Member(c.node).Build()) {
		if err := c.check(ctx, "leave", r.Error()); err != nil {
			return err
		}
	}
	return nil
}

// Nodes lists the members whose announcement has not lapsed at now, sorted by name.
func (c *Client) Nodes(ctx context.Context, now time.Time) ([]NodeInfo, error) {
	hash, _ := c.nodesKeys()
	m, err := c.hgetall(ctx, "list nodes", hash)
	if err != nil {
		return nil, err
	}
	out := make([]NodeInfo, 0, len(m))
	for node, v := range m {
		e, info, ok := strings.Cut(v, "\n")
		ms, err := strconv.ParseInt(e, 10, 64)
		if !ok || err != nil {
			c.m.decodeErrors.Inc()
			continue
		}
		if exp := time.UnixMilli(ms); exp.After(now) {
			out = append(out, NodeInfo{Node: node, Info: []byte(info), Expires: exp})
		}
	}
	slices.SortFunc(out, func(a, b NodeInfo) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}
