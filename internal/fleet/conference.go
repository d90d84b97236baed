package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// The conference state a Redis-backed signaling Hub shares. The fleet stores the caller's encodings and never
// reads them; what a member must see at once travels as events on the conference's channel.

// ConferenceEvent is a registry change made by some member.
type ConferenceEvent struct {
	Room string
	// Data is the conference as the caller encoded it; nil when Deleted.
	Data    []byte
	Deleted bool
	// Node is the member that made the change; members receive their own events too.
	Node string
}

const (
	maxRoomBytes     = 256
	defaultRoomTTL   = 24 * time.Hour
	maxConfDataBytes = 64 << 10
)

// putConfScript replaces a registry entry, publishes the change and returns the previous entry, in one step.
//
//	KEYS: registry hash. ARGV: room, data, channel, event.
const putConfScript = `
local prev = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return prev
`

// delConfScript deletes a registry entry, publishes the deletion and returns the entry.
//
//	KEYS: registry hash. ARGV: room, channel, event.
const delConfScript = `
local prev = redis.call('HGET', KEYS[1], ARGV[1])
if prev then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return prev
`

func checkRoom(room string) error {
	if room == "" || len(room) > maxRoomBytes || strings.ContainsFunc(room, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("room must be 1 to %d bytes without control characters", maxRoomBytes)
	}
	return nil
}

func (c *Client) registryKeys() (hash, channel string) {
	hash = c.tagged("confs", "", "")
	return hash, hash + ":ch"
}

// PutConference records the conference running under room, replacing and returning the previous entry (nil
// when there was none), and publishes the change to every member.
func (c *Client) PutConference(ctx context.Context, room string, data []byte) (prev []byte, err error) {
	if err := checkRoom(room); err != nil {
		return nil, err
	}
	if len(data) > maxConfDataBytes {
		return nil, fmt.Errorf("conference data must be at most %d bytes", maxConfDataBytes)
	}
	rc, err := c.conn()
	if err != nil {
		return nil, err
	}
	hash, ch := c.registryKeys()
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	res := c.putConf.Exec(ctx, rc, []string{hash}, []string{room, string(data), ch, "put\n" + c.node + "\n" + room + "\n" + string(data)})
	return c.optionalBytes(ctx, "put conference", res)
}

// DeleteConference removes the entry for room and publishes the deletion; it returns the entry and whether
// there was one.
func (c *Client) DeleteConference(ctx context.Context, room string) (prev []byte, ok bool, err error) {
	if err := checkRoom(room); err != nil {
		return nil, false, err
	}
	rc, err := c.conn()
	if err != nil {
		return nil, false, err
	}
	hash, ch := c.registryKeys()
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	res := c.delConf.Exec(ctx, rc, []string{hash}, []string{room, ch, "del\n" + c.node + "\n" + room})
	prev, err = c.optionalBytes(ctx, "delete conference", res)
	return prev, prev != nil, err
}

// LookupConference returns the entry for room.
func (c *Client) LookupConference(ctx context.Context, room string) ([]byte, bool, error) {
	if err := checkRoom(room); err != nil {
		return nil, false, err
	}
	rc, err := c.conn()
	if err != nil {
		return nil, false, err
	}
	hash, _ := c.registryKeys()
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	b, err := c.optionalBytes(ctx, "lookup conference", rc.Do(ctx, rc.B().Hget().Key(hash).Field(room).Build()))
	return b, b != nil, err
}

// Conferences returns the whole registry, room to entry.
func (c *Client) Conferences(ctx context.Context) (map[string][]byte, error) {
	hash, _ := c.registryKeys()
	m, err := c.hgetall(ctx, "list conferences", hash)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = []byte(v)
	}
	return out, nil
}

// SubscribeConferences calls fn with every registry change any member makes, this one's included.
func (c *Client) SubscribeConferences(fn func(ConferenceEvent)) *Subscription {
	_, ch := c.registryKeys()
	return c.Subscribe(ch, func(p []byte) error {
		ev, err := parseConferenceEvent(p)
		if err != nil {
			return err
		}
		fn(ev)
		return nil
	})
}

// parseConferenceEvent reads "put\nNODE\nROOM\nDATA" or "del\nNODE\nROOM".
func parseConferenceEvent(p []byte) (ConferenceEvent, error) {
	op, rest, _ := bytes.Cut(p, []byte{'\n'})
	node, rest, ok := bytes.Cut(rest, []byte{'\n'})
	if !ok || len(node) == 0 {
		return ConferenceEvent{}, errors.New("conference event without node")
	}
	switch string(op) {
	case "del":
		if checkRoom(string(rest)) != nil {
			return ConferenceEvent{}, errors.New("conference event with a bad room")
		}
		return ConferenceEvent{Room: string(rest), Deleted: true, Node: string(node)}, nil
	case "put":
		room, data, ok := bytes.Cut(rest, []byte{'\n'})
		if !ok || checkRoom(string(room)) != nil {
			return ConferenceEvent{}, errors.New("conference event with a bad room")
		}
		return ConferenceEvent{Room: string(room), Data: bytes.Clone(data), Node: string(node)}, nil
	}
	return ConferenceEvent{}, fmt.Errorf("unknown conference event %.8q", op)
}

// optionalBytes reads a bulk string reply that may be nil.
func (c *Client) optionalBytes(ctx context.Context, op string, res rueidis.RedisResult) ([]byte, error) {
	s, err := res.ToString()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err = c.check(ctx, op, err); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// Room is the shared state of one conference run: its waiting room, the decisions taken on participants, its
// chat history, who is present (presence.go) and its event channel. Its keys expire ttl after their last write, so that a run no member
// ends explicitly (a node died) does not stay forever.
type Room struct {
	c                                                *Client
	waiting, decided, chat, events, members, present string
	ttl                                              int64 // milliseconds
}

// Entry is one field of a Room's waiting list or decisions.
type Entry struct {
	Key  string
	Data []byte
}

// Room returns the handle of one conference run (room name and content id); ttl 0 means 24h. It makes no
// call: the keys are computed once here.
func (c *Client) Room(room, run string, ttl time.Duration) *Room {
	if ttl <= 0 {
		ttl = defaultRoomTTL
	}
	return &Room{
		c:       c,
		waiting: c.ConfKey(room, run, "waiting"),
		decided: c.ConfKey(room, run, "decided"),
		chat:    c.ConfKey(room, run, "chat"),
		events:  c.ConfKey(room, run, "ch"),
		members: c.ConfKey(room, run, "members"),
		present: c.ConfKey(room, run, "present"),
		ttl:     ttl.Milliseconds(),
	}
}

// Channel returns the run's event channel.
func (r *Room) Channel() string { return r.events }

// Publish sends an event to every member subscribed to the run.
func (r *Room) Publish(ctx context.Context, payload []byte) error {
	return r.c.Publish(ctx, r.events, payload)
}

// Subscribe calls h with every event published on the run's channel.
func (r *Room) Subscribe(h Handler) *Subscription { return r.c.Subscribe(r.events, h) }

// multi runs a few commands in one round trip and returns the first error.
func (r *Room) multi(ctx context.Context, op string, build func(rc rueidis.Client) rueidis.Commands) ([]rueidis.RedisResult, error) {
	rc, err := r.c.conn()
	if err != nil {
		return nil, err
	}
	ctx, cancel := r.c.timeout(ctx)
	defer cancel()
	res := rc.DoMulti(ctx, build(rc)...)
	for _, x := range res {
		if err := r.c.check(ctx, op, x.Error()); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// AddWaiting puts (or replaces) a participant in the waiting list.
func (r *Room) AddWaiting(ctx context.Context, key string, entry []byte) error {
	_, err := r.multi(ctx, "add waiting", func(rc rueidis.Client) rueidis.Commands {
		return rueidis.Commands{
			rc.B().Hset().Key(r.waiting).FieldValue().FieldValue(key, string(entry)).Build(),
			rc.B().Pexpire().Key(r.waiting).Milliseconds(r.ttl).Build(),
		}
	})
	return err
}

// RemoveWaiting takes a participant out of the waiting list; it reports whether they were in it.
func (r *Room) RemoveWaiting(ctx context.Context, key string) (bool, error) {
	res, err := r.multi(ctx, "remove waiting", func(rc rueidis.Client) rueidis.Commands {
		return rueidis.Commands{rc.B().Hdel().Key(r.waiting).Field(key).Build()}
	})
	if err != nil {
		return false, err
	}
	n, _ := res[0].AsInt64()
	return n > 0, nil
}

// Waiting returns the waiting list, sorted by key; the caller orders it by what its entries say (join time).
func (r *Room) Waiting(ctx context.Context) ([]Entry, error) {
	return r.entries(ctx, "list waiting", r.waiting)
}

// Decisions returns every decision taken in this run, sorted by key.
func (r *Room) Decisions(ctx context.Context) ([]Entry, error) {
	return r.entries(ctx, "list decisions", r.decided)
}

func (r *Room) entries(ctx context.Context, op, key string) ([]Entry, error) {
	res, err := r.multi(ctx, op, func(rc rueidis.Client) rueidis.Commands {
		return rueidis.Commands{rc.B().Hgetall().Key(key).Build()}
	})
	if err != nil {
		return nil, err
	}
	m, err := res[0].AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	out := make([]Entry, 0, len(m))
	for k, v := range m {
		out = append(out, Entry{Key: k, Data: []byte(v)})
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// decideScript moves participants from the waiting list to the decisions in one step, so that two moderators
// on two nodes never both admit (or one admit and the other reject) the same participant.
//
//	KEYS: waiting hash, decided hash. ARGV: ttl ms, decision, "all" or "keys", keys...
//	Returns the keys that were waiting.
const decideScript = `
local keys = {}
if ARGV[3] == 'all' then
  keys = redis.call('HKEYS', KEYS[1])
else
  for i = 4, #ARGV do keys[#keys + 1] = ARGV[i] end
end
local moved = {}
for _, k in ipairs(keys) do
  if redis.call('HDEL', KEYS[1], k) == 1 then
    redis.call('HSET', KEYS[2], k, ARGV[2])
    moved[#moved + 1] = k
  end
end
if #moved > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
return moved
`

// Decide records decision for the given waiting participants and takes them out of the waiting list. It
// returns the keys that were waiting: a participant another moderator decided on first is not among them.
func (r *Room) Decide(ctx context.Context, keys []string, decision []byte) ([]string, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	return r.decideArgs(ctx, append([]string{strconv.FormatInt(r.ttl, 10), string(decision), "keys"}, keys...))
}

// DecideAll records decision for everyone waiting (a moderator admits all, or the waiting room was turned
// off) and returns who was.
func (r *Room) DecideAll(ctx context.Context, decision []byte) ([]string, error) {
	return r.decideArgs(ctx, []string{strconv.FormatInt(r.ttl, 10), string(decision), "all"})
}

func (r *Room) decideArgs(ctx context.Context, args []string) ([]string, error) {
	rc, err := r.c.conn()
	if err != nil {
		return nil, err
	}
	ctx, cancel := r.c.timeout(ctx)
	defer cancel()
	moved, err := r.c.decide.Exec(ctx, rc, []string{r.waiting, r.decided}, args).AsStrSlice()
	if err = r.c.check(ctx, "decide", err); err != nil {
		return nil, err
	}
	return moved, nil
}

// Decision returns the decision taken on a participant in this run, if any.
func (r *Room) Decision(ctx context.Context, key string) ([]byte, bool, error) {
	rc, err := r.c.conn()
	if err != nil {
		return nil, false, err
	}
	ctx, cancel := r.c.timeout(ctx)
	defer cancel()
	b, err := r.c.optionalBytes(ctx, "decision", rc.Do(ctx, rc.B().Hget().Key(r.decided).Field(key).Build()))
	return b, b != nil, err
}

// AppendChat adds a message to the history, keeping the last max.
func (r *Room) AppendChat(ctx context.Context, msg []byte, max int) error {
	if max < 1 {
		return errors.New("chat history needs a cap of at least 1")
	}
	_, err := r.multi(ctx, "append chat", func(rc rueidis.Client) rueidis.Commands {
		return rueidis.Commands{
			rc.B().Rpush().Key(r.chat).Element(string(msg)).Build(),
			rc.B().Ltrim().Key(r.chat).Start(int64(-max)).Stop(-1).Build(),
			rc.B().Pexpire().Key(r.chat).Milliseconds(r.ttl).Build(),
		}
	})
	return err
}

// PublishChat publishes payload on the run's channel and adds msg to the history, keeping the last max, in one
// round trip: a chat message's whole trip through Redis.
func (r *Room) PublishChat(ctx context.Context, payload, msg []byte, max int) error {
	if max < 1 {
		return errors.New("chat history needs a cap of at least 1")
	}
	_, err := r.multi(ctx, "publish chat", func(rc rueidis.Client) rueidis.Commands {
		return rueidis.Commands{
			rc.B().Publish().Channel(r.events).Message(rueidis.BinaryString(payload)).Build(),
			rc.B().Rpush().Key(r.chat).Element(string(msg)).Build(),
			rc.B().Ltrim().Key(r.chat).Start(int64(-max)).Stop(-1).Build(),
			rc.B().Pexpire().Key(r.chat).Milliseconds(r.ttl).Build(),
		}
	})
	if err != nil {
		r.c.m.publishErrors.Inc()
		return err
	}
	r.c.m.published.Inc()
	return nil
}

// Chat returns the last n messages of the history, oldest first.
func (r *Room) Chat(ctx context.Context, n int) ([][]byte, error) {
	if n < 1 {
		return nil, nil
	}
	res, err := r.multi(ctx, "chat history", func(rc rueidis.Client) rueidis.Commands {
		return rueidis.Commands{rc.B().Lrange().Key(r.chat).Start(int64(-n)).Stop(-1).Build()}
	})
	if err != nil {
		return nil, err
	}
	ss, err := res[0].AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("chat history: %w", err)
	}
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out, nil
}

// Drop deletes the run's state, when the conference ends or is replaced by a new run.
func (r *Room) Drop(ctx context.Context) error {
	_, err := r.multi(ctx, "drop conference", func(rc rueidis.Client) rueidis.Commands {
		return rueidis.Commands{rc.B().Del().Key(r.waiting, r.decided, r.chat, r.members, r.present).Build()}
	})
	return err
}
