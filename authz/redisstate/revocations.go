package redisstate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/internal/fleet"
)

// ErrFleetUnavailable is returned by Kick for a session this node does not hold while Redis is unreachable:
// the member that holds it cannot be asked.
var ErrFleetUnavailable = errors.New("session is not on this node and the fleet is unreachable")

// revocations is the fleet's bans and kicks as this member knows them: what Redis held at the last re-sync,
// changed by every event since, and by this member's own changes while Redis was unreachable.
type revocations struct {
	mu    sync.Mutex
	bans  map[string]authz.Ban   // by ban id
	kicks map[string]*kickRecord // by session id
	// pending are this member's changes made while Redis was unreachable, shared in order at the next re-sync.
	pending []pendingOp
	// While a re-sync loads the set, events are kept here too and applied again on top of what it loaded: an
	// event may describe a change the load missed.
	loading bool
	replay  []fleet.RevocationEvent
	// epoch is the fleet's epoch as last seen; see the package doc.
	epoch string

	pub sync.Mutex // serializes publish, so that a slower publish never replaces a newer set
}

// pendingOp is a ban, unban or kick to share: a put with rev, or a delete of id.
type pendingOp struct {
	rev fleet.Revocation
	del string
}

const maxReplay = 10000

func (r *revocations) init() {
	r.bans = map[string]authz.Ban{}
	r.kicks = map[string]*kickRecord{}
}

func (s *State) pendingLen() int {
	s.rev.mu.Lock()
	defer s.rev.mu.Unlock()
	return len(s.rev.pending)
}

// addPending keeps a change for the next re-sync, the oldest dropped beyond the bound.
func (s *State) addPending(op pendingOp) {
	r := &s.rev
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) >= 2*s.maxEntries {
		r.pending = slices.Delete(r.pending, 0, 1)
	}
	r.pending = append(r.pending, op)
}

// publish hands the set in force at now to the in-memory state, which builds the next snapshot from it.
func (s *State) publish(now time.Time) {
	r := &s.rev
	r.pub.Lock()
	defer r.pub.Unlock()
	at := now.UnixNano()
	r.mu.Lock()
	bans := make([]authz.Ban, 0, len(r.bans))
	for _, b := range r.bans {
		if b.Expires.IsZero() || b.Expires.UnixNano() > at {
			bans = append(bans, b)
		}
	}
	var kicks []authz.Kick
	for _, k := range r.kicks {
		for _, x := range k.kicks() {
			if x.Until == 0 || x.Until > at {
				kicks = append(kicks, x)
			}
		}
	}
	r.mu.Unlock()
	s.mem.SetShared(bans, kicks)
	s.notify()
}

// prune drops the bans and kicks that ran out; expiry is not published, every member drops them by itself.
func (s *State) prune(now time.Time) {
	r := &s.rev
	at := now.UnixNano()
	n := 0
	r.mu.Lock()
	for id, b := range r.bans {
		if !b.Expires.IsZero() && b.Expires.UnixNano() <= at {
			delete(r.bans, id)
			n++
		}
	}
	for id, k := range r.kicks {
		if u := k.until(); u != 0 && u <= at {
			delete(r.kicks, id)
			n++
		}
	}
	r.mu.Unlock()
	if n > 0 {
		s.publish(now)
	}
}

// share stores a change in Redis and publishes it to every member; while Redis is unreachable it is kept for
// the next re-sync. A full list (fleet.ErrFull) is the caller's to report.
func (s *State) share(op pendingOp, now time.Time) error {
	var err error
	if op.del != "" {
		_, err = s.fc.Unrevoke(s.ctx, op.del)
	} else {
		err = s.fc.Revoke(s.ctx, op.rev, s.maxEntries, now)
	}
	switch {
	case err == nil, errors.Is(err, fleet.ErrFull):
		return err
	case errors.Is(err, fleet.ErrUnavailable):
		s.addPending(op)
		s.log.Warn("authz: fleet unreachable; the change applies on this node and is shared when it returns", "id", op.id())
		return nil
	}
	// A Redis error reply (a script or data problem): the change still applies here, and a re-sync retries it.
	s.addPending(op)
	s.log.Error("authz: sharing a change with the fleet failed", "id", op.id(), "err", err)
	return nil
}

func (op pendingOp) id() string {
	if op.del != "" {
		return op.del
	}
	return op.rev.ID
}

// Ban refuses an address or CIDR, a user or a token on every node of the fleet, from the next request on, and
// closes the sessions it covers on this node (every other node closes its own when the ban reaches it).
func (s *State) Ban(req authz.BanRequest, now time.Time) (authz.Ban, error) {
	b, err := authz.NewBan(req, newBanID(), now)
	if err != nil {
		return authz.Ban{}, err
	}
	s.rev.mu.Lock()
	full := len(s.rev.bans) >= s.maxEntries
	s.rev.mu.Unlock()
	if full {
		return authz.Ban{}, authz.ErrBanListFull
	}
	rev, err := banRevocation(b)
	if err != nil {
		return authz.Ban{}, fmt.Errorf("encoding ban: %w", err)
	}
	if err := s.share(pendingOp{rev: rev}, now); err != nil {
		if errors.Is(err, fleet.ErrFull) {
			return authz.Ban{}, authz.ErrBanListFull
		}
		return authz.Ban{}, err
	}
	s.rev.mu.Lock()
	s.rev.bans[b.ID] = b
	s.rev.mu.Unlock()
	s.publish(now)
	s.log.Info("authz: ban added", "id", b.ID, "ip", b.IP, "user", b.User, "token", b.Token, "expires", b.Expires)
	s.mem.CloseBanned(b, now)
	return b, nil
}

// Unban lifts a ban on every node; it reports whether there was one.
func (s *State) Unban(id string) bool {
	if strings.ContainsFunc(id, func(r rune) bool { return r < ' ' || r == 0x7f }) || len(id) > 128 || id == "" {
		return false
	}
	s.rev.mu.Lock()
	_, known := s.rev.bans[id]
	delete(s.rev.bans, id)
	s.rev.mu.Unlock()
	found, err := s.fc.Unrevoke(s.ctx, banPrefix+id)
	if err != nil {
		if known {
			s.addPending(pendingOp{del: banPrefix + id})
		}
		found = false
	}
	if !known && !found {
		// A ban made on this node before the fleet (MemState's own).
		return s.mem.Unban(id)
	}
	s.publish(s.clock())
	s.log.Info("authz: ban lifted", "id", id)
	return true
}

// Bans lists the fleet's bans in force, oldest first.
func (s *State) Bans(now time.Time) []authz.Ban {
	at := now.UnixNano()
	s.rev.mu.Lock()
	out := make([]authz.Ban, 0, len(s.rev.bans))
	for _, b := range s.rev.bans {
		if b.Expires.IsZero() || b.Expires.UnixNano() > at {
			out = append(out, b)
		}
	}
	s.rev.mu.Unlock()
	out = append(out, s.mem.Bans(now)...)
	slices.SortFunc(out, func(a, b authz.Ban) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Kick closes a session wherever it is held: its token is refused on that channel, and its session ids
// everywhere, until the token expires, on every node. A session held by another node is closed by that node,
// asked through the fleet; Kick waits for its answer two Redis round trips (redis.read_timeout each), and
// reports ErrNoSession when no node has it by then.
func (s *State) Kick(id string, now time.Time) (authz.SessionInfo, error) {
	info, ks, err := s.mem.CloseSession(id, "kicked", now, 0, false)
	switch {
	case err == nil:
		s.kicked(id, info, ks, now)
		return info, nil
	case !errors.Is(err, authz.ErrNoSession):
		return info, err
	case !validSessionID(id):
		// Anything else names no session anywhere.
		return authz.SessionInfo{}, authz.ErrNoSession
	}
	if s.fc.Degraded() {
		return authz.SessionInfo{}, ErrFleetUnavailable
	}
	ch := make(chan authz.SessionInfo, 1)
	s.cmu.Lock()
	s.waiters[id] = append(s.waiters[id], ch)
	s.cmu.Unlock()
	defer s.dropWaiter(id, ch)
	if err := s.fc.Publish(s.ctx, s.ctlCh, control{op: "kick", node: s.node, id: id}.encode()); err != nil {
		return authz.SessionInfo{}, ErrFleetUnavailable
	}
	t := time.NewTimer(s.kickWait)
	defer t.Stop()
	select {
	case info := <-ch:
		return info, nil
	case <-t.C:
		return authz.SessionInfo{}, authz.ErrNoSession
	case <-s.ctx.Done():
		return authz.SessionInfo{}, authz.ErrNoSession
	}
}

func (s *State) dropWaiter(id string, ch chan authz.SessionInfo) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	list := slices.DeleteFunc(s.waiters[id], func(c chan authz.SessionInfo) bool { return c == ch })
	if len(list) == 0 {
		delete(s.waiters, id)
	} else {
		s.waiters[id] = list
	}
}

// kicked shares the kicks of a session this node closed, and frees its place in the user's count.
func (s *State) kicked(id string, info authz.SessionInfo, ks []authz.Kick, now time.Time) {
	rec := newKickRecord(info, ks)
	s.rev.mu.Lock()
	s.putKickLocked(id, &rec)
	s.rev.mu.Unlock()
	s.publish(now)
	// The other nodes first; freeing the session's place in the user's count can wait a round trip.
	defer s.endSession(info)
	rev, err := kickRevocation(id, rec)
	if err != nil {
		s.log.Error("authz: encoding kick", "err", err)
		return
	}
	if err := s.share(pendingOp{rev: rev}, now); errors.Is(err, fleet.ErrFull) {
		s.log.Warn("authz: the fleet's ban list is full; the kick applies on this node only", "id", id)
	}
}

// putKickLocked records a kick; past the bound the one that ends first makes room.
func (s *State) putKickLocked(id string, rec *kickRecord) {
	r := &s.rev
	if _, ok := r.kicks[id]; !ok && len(r.kicks) >= s.maxEntries {
		var first string
		var end int64 = -1
		for k, v := range r.kicks {
			if u := v.until(); u != 0 && (end < 0 || u < end) {
				first, end = k, u
			}
		}
		if first != "" {
			delete(r.kicks, first)
		}
	}
	r.kicks[id] = rec
}

// onRevocation applies a ban or kick made by any member, this one included. It runs on the subscription's
// reader: map updates and the snapshot are quick; closing sessions goes to the controller.
func (s *State) onRevocation(ev fleet.RevocationEvent) {
	now := s.clock()
	r := &s.rev
	r.mu.Lock()
	if r.loading {
		if len(r.replay) < maxReplay {
			r.replay = append(r.replay, ev)
		}
	}
	res, err := s.applyLocked(ev)
	r.mu.Unlock()
	if err != nil {
		s.m.eventErrors.Inc()
		if n := s.m.eventErrors.Get(); n&(n-1) == 0 {
			s.log.Warn("authz: fleet event dropped", "id", ev.ID, "node", ev.Node, "err", err, "dropped_total", n)
		}
		return
	}
	if !res.changed {
		return
	}
	s.m.events.Inc()
	s.publish(now)
	if ev.Node == s.node {
		return
	}
	switch {
	case res.ban != nil:
		b := *res.ban
		s.later(func() { s.mem.CloseBanned(b, s.clock()) })
	case res.kick != nil:
		k := res.kick
		s.wake(strings.TrimPrefix(ev.ID, kickPrefix), k.Session)
		s.later(func() { s.mem.CloseKicked(k.kicks(), s.clock()) })
	}
}

// applied says what an event changed.
type applied struct {
	changed bool
	ban     *authz.Ban
	kick    *kickRecord
}

// applyLocked applies one event to the set; the caller holds rev.mu.
func (s *State) applyLocked(ev fleet.RevocationEvent) (applied, error) {
	r := &s.rev
	switch {
	case ev.ID == epochID:
		if !ev.Deleted {
			r.epoch = string(ev.Data)
		}
		return applied{}, nil
	case strings.HasPrefix(ev.ID, banPrefix):
		id := strings.TrimPrefix(ev.ID, banPrefix)
		if ev.Deleted {
			_, ok := r.bans[id]
			delete(r.bans, id)
			return applied{changed: ok}, nil
		}
		b, err := parseBan(ev.Revocation)
		if err != nil {
			return applied{}, err
		}
		r.bans[id] = b
		return applied{changed: true, ban: &b}, nil
	case strings.HasPrefix(ev.ID, kickPrefix):
		id := strings.TrimPrefix(ev.ID, kickPrefix)
		if ev.Deleted {
			_, ok := r.kicks[id]
			delete(r.kicks, id)
			return applied{changed: ok}, nil
		}
		k, err := parseKick(ev.Revocation)
		if err != nil {
			return applied{}, err
		}
		s.putKickLocked(id, &k)
		return applied{changed: true, kick: &k}, nil
	}
	// Another application's revocation in the same prefix: not ours to apply.
	return applied{}, nil
}

// wake answers the Kick calls waiting for session id.
func (s *State) wake(id string, info authz.SessionInfo) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	for _, ch := range s.waiters[id] {
		select {
		case ch <- info:
		default:
		}
	}
}

// onControl receives the members' requests; they are carried out by the controller.
func (s *State) onControl(p []byte) error {
	c, err := parseControl(p)
	if err != nil {
		return err
	}
	if c.node == s.node {
		return nil
	}
	switch c.op {
	case "kick":
		s.later(func() {
			now := s.clock()
			info, ks, err := s.mem.CloseSession(c.id, "kicked", now, 0, false)
			if err != nil {
				return
			}
			s.log.Info("authz: session kicked by another node", "id", c.id, "by", c.node)
			s.kicked(c.id, info, ks, now)
		})
	case "evict":
		s.later(func() { s.evict(c.owner, c.members, s.clock()) })
	}
	return nil
}

// resync brings the member back in line with the fleet: when it starts and whenever Redis returns after a
// period without it. It shares what was changed meanwhile, loads the fleet's bans and kicks (giving Redis
// what this member knows when Redis lost its data), and re-admits this node's sessions with a limit, oldest
// first, so that limits counted locally meanwhile are the fleet's again.
func (s *State) resync(ctx context.Context) {
	for _, sub := range []*fleet.Subscription{s.sub, s.ctlSub} {
		select {
		case <-sub.Ready():
		case <-ctx.Done():
			return
		}
	}
	now := s.clock()
	if !s.pushPending(ctx, now) {
		return
	}
	if !s.reload(ctx, now) {
		return
	}
	if !s.readmitAll(ctx) {
		// Redis failed again: the member is degraded, and its recovery re-syncs again.
		return
	}
	s.m.resyncs.Inc()
	s.notify()
	s.log.Info("authz: re-synced with the fleet", "bans", len(s.Bans(now)), "tracked_sessions", s.tab.count.Load())
}

// pushPending shares the changes made while Redis was unreachable, in order; it reports whether all went.
func (s *State) pushPending(ctx context.Context, now time.Time) bool {
	r := &s.rev
	r.mu.Lock()
	ops := r.pending
	r.pending = nil
	r.mu.Unlock()
	for i, op := range ops {
		var err error
		if op.del != "" {
			_, err = s.fc.Unrevoke(ctx, op.del)
		} else if op.rev.Expires.IsZero() || op.rev.Expires.After(now) {
			err = s.fc.Revoke(ctx, op.rev, s.maxEntries, now)
		}
		switch {
		case errors.Is(err, fleet.ErrUnavailable):
			r.mu.Lock()
			r.pending = append(ops[i:], r.pending...)
			r.mu.Unlock()
			return false
		case err != nil:
			s.log.Warn("authz: a change made without the fleet could not be shared", "id", op.id(), "err", err)
		}
	}
	return true
}

// reload replaces the set with the fleet's. When Redis has no epoch, or not the one last seen, it lost its data
// (a restart without persistence) or this member is new: the member then gives it every ban and kick it knows
// that Redis lacks, so that a Redis restart lifts no ban.
func (s *State) reload(ctx context.Context, now time.Time) bool {
	r := &s.rev
	r.mu.Lock()
	r.loading, r.replay = true, nil
	r.mu.Unlock()
	ok := false
	defer func() {
		if !ok {
			r.mu.Lock()
			r.loading, r.replay = false, nil
			r.mu.Unlock()
		}
	}()
	list, err := s.fc.Revocations(ctx, now)
	if err != nil {
		s.log.Warn("authz: loading the fleet's bans and kicks", "err", err)
		return false
	}
	bans, kicks := map[string]authz.Ban{}, map[string]*kickRecord{}
	epoch := ""
	for _, rv := range list {
		switch {
		case rv.ID == epochID:
			epoch = string(rv.Data)
		case strings.HasPrefix(rv.ID, banPrefix):
			if b, err := parseBan(rv); err == nil {
				bans[b.ID] = b
			} else {
				s.m.eventErrors.Inc()
			}
		case strings.HasPrefix(rv.ID, kickPrefix):
			if k, err := parseKick(rv); err == nil {
				kicks[strings.TrimPrefix(rv.ID, kickPrefix)] = &k
			} else {
				s.m.eventErrors.Inc()
			}
		}
	}
	r.mu.Lock()
	seen := r.epoch
	var give []fleet.Revocation
	if epoch == "" || epoch != seen {
		for id, b := range r.bans {
			if _, ok := bans[id]; !ok {
				if rv, err := banRevocation(b); err == nil {
					give = append(give, rv)
					bans[id] = b
				}
			}
		}
		for id, k := range r.kicks {
			if _, ok := kicks[id]; !ok {
				if rv, err := kickRevocation(id, *k); err == nil {
					give = append(give, rv)
					kicks[id] = k
				}
			}
		}
	}
	r.mu.Unlock()
	for _, rv := range give {
		if !rv.Expires.IsZero() && !rv.Expires.After(now) {
			continue
		}
		if err := s.fc.Revoke(ctx, rv, s.maxEntries, now); err != nil {
			if errors.Is(err, fleet.ErrUnavailable) {
				return false
			}
			s.log.Warn("authz: giving the fleet a ban or kick it lost", "id", rv.ID, "err", err)
		}
	}
	if epoch == "" {
		epoch = randomHex(8)
		if err := s.fc.Revoke(ctx, fleet.Revocation{ID: epochID, Data: []byte(epoch)}, 0, now); err != nil {
			if errors.Is(err, fleet.ErrUnavailable) {
				return false
			}
			s.log.Warn("authz: writing the fleet's epoch", "err", err)
		}
	}
	if len(give) > 0 {
		s.log.Info("authz: the fleet's Redis had lost bans or kicks this node knew; shared them again", "count", len(give))
	}
	r.mu.Lock()
	r.bans, r.kicks = bans, kicks
	r.epoch = epoch
	for _, ev := range r.replay {
		if ev.ID != epochID {
			_, _ = s.applyLocked(ev)
		}
	}
	r.loading, r.replay = false, nil
	r.mu.Unlock()
	ok = true
	s.publish(now)
	// Sessions opened here while Redis was away may be covered by what was decided elsewhere meanwhile.
	s.later(func() {
		now := s.clock()
		var ks []authz.Kick
		for _, b := range s.Bans(now) {
			s.mem.CloseBanned(b, now)
		}
		s.rev.mu.Lock()
		for _, k := range s.rev.kicks {
			ks = append(ks, k.kicks()...)
		}
		s.rev.mu.Unlock()
		s.mem.CloseKicked(ks, now)
	})
	return true
}
