package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// Handler receives one message's payload, which it owns. It runs on the subscription's reader goroutine, so it
// must not block: hand the work off (a buffered send that drops when full, as signaling's members do). An error
// means the payload could not be decoded: the message is counted (hlsedge_fleet_messages_dropped_total) and
// dropped. A panic is treated the same way.
type Handler func(payload []byte) error

// Subscription is one handler on one channel. It survives reconnections: the member subscribes it again on every
// new subscription connection.
type Subscription struct {
	s       *subscriber
	channel string
	h       Handler
	ready   chan struct{}
	once    sync.Once
	closed  atomic.Bool
}

// Ready is closed once Redis confirmed the subscription, so that a publish after it is received.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Channel returns the subscribed channel.
func (s *Subscription) Channel() string { return s.channel }

// Close removes the handler; the channel is unsubscribed when it was the last one. A message being dispatched
// at that moment may still reach the handler.
func (s *Subscription) Close() {
	if s.closed.Swap(true) {
		return
	}
	s.s.remove(s)
}

// Subscribe calls h with every message published on channel, from now until the Subscription is closed. It
// never fails: while Redis is unreachable the subscription waits, and Ready tells when it is live.
func (c *Client) Subscribe(channel string, h Handler) *Subscription {
	sub := &Subscription{s: c.sub, channel: channel, h: h, ready: make(chan struct{})}
	c.sub.add(sub)
	return sub
}

// Publish sends payload to every member subscribed to channel. It is not retried: a fleet event that is lost
// while Redis is unreachable is recovered by the resync that follows.
func (c *Client) Publish(ctx context.Context, channel string, payload []byte) error {
	rc, err := c.conn()
	if err != nil {
		c.m.publishErrors.Inc()
		return err
	}
	ctx, cancel := c.timeout(ctx)
	err = rc.Do(ctx, rc.B().Publish().Channel(channel).Message(rueidis.BinaryString(payload)).Build()).Error()
	cancel()
	if err = c.check(ctx, "publish", err); err != nil {
		c.m.publishErrors.Inc()
		return err
	}
	c.m.published.Inc()
	return nil
}

// subscriber owns the member's one subscription connection. All channels share it, so that one probe watches
// them all: Redis delivers messages of every channel of a connection in order on that connection.
type subscriber struct {
	c       *Client
	probeCh string

	mu    sync.RWMutex
	chans map[string][]*Subscription // copy on write: readers may keep a slice after unlocking
	wake  chan struct{}              // the wanted channel set changed

	// Probe sequence numbers only grow, across connections too, so that a late probe of an old connection
	// never answers a new one.
	probeSeq atomic.Uint64
	probeGot atomic.Uint64
	nchans   atomic.Int64
}

func newSubscriber(c *Client) *subscriber {
	var id [6]byte
	_, _ = rand.Read(id[:])
	return &subscriber{
		c: c,
		// Unique per process: two processes may share a node name (tests, a restart overlapping the old one).
		probeCh: c.tagged("probe", "", ":"+c.node+":"+hex.EncodeToString(id[:])),
		chans:   map[string][]*Subscription{},
		wake:    make(chan struct{}, 1),
	}
}

func (s *subscriber) channels() int { return int(s.nchans.Load()) }

func (s *subscriber) add(sub *Subscription) {
	s.mu.Lock()
	s.chans[sub.channel] = append(slices.Clip(s.chans[sub.channel]), sub)
	s.mu.Unlock()
	s.poke()
}

func (s *subscriber) remove(sub *Subscription) {
	s.mu.Lock()
	list := s.chans[sub.channel]
	if i := slices.Index(list, sub); i >= 0 {
		list = slices.Delete(slices.Clone(list), i, i+1)
	}
	if len(list) == 0 {
		delete(s.chans, sub.channel)
	} else {
		s.chans[sub.channel] = list
	}
	s.mu.Unlock()
	s.poke()
}

func (s *subscriber) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

var (
	errProbeLost       = errors.New("probe not delivered: subscription stalled")
	errProbeNoReceiver = errors.New("probe reached no subscriber: subscription lost on the server")
)

const (
	minBackoff = 20 * time.Millisecond
	maxBackoff = time.Second
	// subscribeChunk bounds one SUBSCRIBE's arguments when a connection subscribes to every channel again.
	subscribeChunk = 512
)

// run keeps one subscription connection alive until ctx ends.
func (s *subscriber) run(ctx context.Context) {
	defer s.c.wg.Done()
	backoff := minBackoff
	for ctx.Err() == nil {
		live, err := s.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if live {
			backoff = minBackoff
			if errors.Is(err, errProbeLost) || errors.Is(err, errProbeNoReceiver) {
				s.c.m.reconnectsProbe.Inc()
			} else {
				s.c.m.reconnectsLost.Inc()
			}
			s.c.log.Warn("fleet subscription reconnecting", "reason", err)
		}
		s.c.setHealth(partSub, "subscription: "+err.Error())
		// Wait for the next attempt; a ping that finds Redis back cuts the wait short.
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-s.c.connRecovered():
		}
		t.Stop()
		backoff = min(2*backoff, maxBackoff)
	}
}

// session is the life of one subscription connection. live reports whether it ever subscribed everything.
func (s *subscriber) session(ctx context.Context) (live bool, err error) {
	rc := s.c.client()
	if rc == nil {
		return false, ErrUnavailable
	}
	dc, release := rc.Dedicate()
	defer func() {
		// Closing a connection whose peer went silent waits for a ping up to a second: do it aside.
		s.c.wg.Add(1)
		go func() {
			defer s.c.wg.Done()
			dc.Close()
			release()
		}()
	}()
	errc := dc.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: s.onMessage})
	on := map[string]bool{}
	if err := s.sync(ctx, dc, on); err != nil {
		return false, err
	}
	s.c.setHealth(partSub, "")
	var pending uint64 // the probe in flight; 0: none
	// A timer, not a ticker: a ticker catches up on ticks a busy goroutine missed, which would check a probe
	// moments after sending it. The timer restarts after each probe, so every probe gets a full interval.
	t := time.NewTimer(s.c.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err := <-errc:
			if err == nil {
				err = errors.New("connection closed")
			}
			return true, fmt.Errorf("connection lost: %w", err)
		case <-s.wake:
			if err := s.sync(ctx, dc, on); err != nil {
				return true, err
			}
		case <-t.C:
			if pending != 0 && s.probeGot.Load() < pending {
				return true, errProbeLost
			}
			pending = 0
			seq := s.probeSeq.Add(1)
			n, err := s.probe(ctx, seq)
			switch {
			case err != nil:
				// Redis itself is unreachable: the ping and the connection's own error handle that.
			case n == 0:
				return true, errProbeNoReceiver
			default:
				pending = seq
			}
			t.Reset(s.c.cfg.ProbeInterval)
		}
	}
}

// probe publishes a probe through the command connection, as fleet events travel.
func (s *subscriber) probe(ctx context.Context, seq uint64) (int64, error) {
	rc := s.c.client()
	if rc == nil {
		return 0, ErrUnavailable
	}
	ctx, cancel := context.WithTimeout(ctx, s.c.cfg.ReadTimeout)
	defer cancel()
	s.c.m.probesPublished.Inc()
	return rc.Do(ctx, rc.B().Publish().Channel(s.probeCh).Message(strconv.FormatUint(seq, 10)).Build()).AsInt64()
}

// sync subscribes the connection to the wanted channels and unsubscribes the others; on records what the
// connection is subscribed to.
func (s *subscriber) sync(ctx context.Context, dc rueidis.DedicatedClient, on map[string]bool) error {
	s.mu.RLock()
	var add, del []string
	if !on[s.probeCh] {
		add = append(add, s.probeCh)
	}
	for ch := range s.chans {
		if !on[ch] {
			add = append(add, ch)
		}
	}
	for ch := range on {
		if _, ok := s.chans[ch]; !ok && ch != s.probeCh {
			del = append(del, ch)
		}
	}
	s.mu.RUnlock()
	for len(add) > 0 {
		n := min(len(add), subscribeChunk)
		if err := s.do(ctx, dc, dc.B().Subscribe().Channel(add[:n]...).Build()); err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		for _, ch := range add[:n] {
			on[ch] = true
		}
		add = add[n:]
	}
	for len(del) > 0 {
		n := min(len(del), subscribeChunk)
		if err := s.do(ctx, dc, dc.B().Unsubscribe().Channel(del[:n]...).Build()); err != nil {
			return fmt.Errorf("unsubscribe: %w", err)
		}
		for _, ch := range del[:n] {
			delete(on, ch)
		}
		del = del[n:]
	}
	s.nchans.Store(int64(len(on) - 1))
	// Ready every subscription the connection now carries, including ones added while the commands ran: they
	// wait for the next sync otherwise.
	s.mu.RLock()
	for ch, subs := range s.chans {
		if on[ch] {
			for _, sub := range subs {
				sub.once.Do(func() { close(sub.ready) })
			}
		}
	}
	s.mu.RUnlock()
	return nil
}

func (s *subscriber) do(ctx context.Context, dc rueidis.DedicatedClient, cmd rueidis.Completed) error {
	ctx, cancel := context.WithTimeout(ctx, s.c.cfg.ReadTimeout)
	defer cancel()
	return dc.Do(ctx, cmd).Error()
}

// onMessage runs on the connection's reader goroutine.
func (s *subscriber) onMessage(m rueidis.PubSubMessage) {
	if m.Channel == s.probeCh {
		seq, _ := strconv.ParseUint(m.Message, 10, 64)
		for {
			got := s.probeGot.Load()
			if seq <= got || s.probeGot.CompareAndSwap(got, seq) {
				return
			}
		}
	}
	s.mu.RLock()
	subs := s.chans[m.Channel]
	s.mu.RUnlock()
	for _, sub := range subs {
		if sub.closed.Load() {
			continue
		}
		s.c.m.received.Inc()
		s.deliver(sub, []byte(m.Message))
	}
}

func (s *subscriber) deliver(sub *Subscription, payload []byte) {
	defer func() {
		if p := recover(); p != nil {
			s.dropped(sub.channel, fmt.Errorf("handler panicked: %v", p))
		}
	}()
	if err := sub.h(payload); err != nil {
		s.dropped(sub.channel, err)
	}
}

// dropped counts a message no handler could use. Its log lines thin out (1st, 2nd, 4th, 8th...) so that a
// member flooding garbage cannot flood the log too.
func (s *subscriber) dropped(channel string, err error) {
	s.c.m.decodeErrors.Inc()
	if n := s.c.m.decodeErrors.Get(); n&(n-1) == 0 {
		s.c.log.Warn("fleet message dropped", "channel", channel, "err", err, "dropped_total", n)
	}
}
