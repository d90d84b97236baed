package redisstate

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/internal/fleet"
)

// State is an authz.ViewerState shared with a fleet. Build it with New, hand it to authz.New with
// authz.WithState, and Close it after the last Authorizer using it.
type State struct {
	mem   *authz.MemState
	fc    *fleet.Client
	log   *slog.Logger
	m     *stateMetrics
	clock func() time.Time
	node  string

	idle        time.Duration // auth.sessions.idle_timeout
	soft        bool          // auth.sessions.soft
	perUser     int           // auth.sessions.max_per_user
	sessionsOff bool
	maxEntries  int // auth.bans.max_entries: bans, and kicks, each
	ctlCh       string

	rev revocations
	tab *table

	refreshQ chan refreshJob
	throttle fleet.Throttle
	ctlQ     chan func() // follow-ups of fleet events that may block (Redis calls, session scans)

	cmu     sync.Mutex
	changed chan struct{}
	waiters map[string][]chan authz.SessionInfo // remote kicks waiting for the holder's answer, by session id
	// kickWait is how long a remote kick waits for the holder's answer (WithKickWait).
	kickWait time.Duration

	sub, ctlSub *fleet.Subscription
	unhook      func()

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

var _ authz.ViewerState = (*State)(nil)

// Option changes how New builds the state.
type Option func(*options)

type options struct {
	clock    func() time.Time
	janitor  bool
	kickWait time.Duration
}

// WithClock sets the clock of the background work (re-syncs, the janitor); requests bring their own time.
func WithClock(c func() time.Time) Option { return func(o *options) { o.clock = c } }

// WithoutJanitor leaves idle sessions and expired bans to explicit Sweep calls, for tests.
func WithoutJanitor() Option { return func(o *options) { o.janitor = false } }

// WithKickWait sets how long Kick waits for the member that holds a session to answer; the default is two
// Redis round trips (redis.read_timeout each).
func WithKickWait(d time.Duration) Option { return func(o *options) { o.kickWait = d } }

const (
	refreshWorkers = 4
	refreshQueue   = 4096
	controlQueue   = 1024
	// maxUA is the user agent length sessions keep (authz's own bound), so that both see the same viewer.
	maxUA = 512
)

// New builds the state of a fleet member from the auth section (sessions, bans, edge.max_ttl) and starts its
// background work: the subscription to the fleet's bans and kicks, the session refreshes, and a re-sync now
// (when Redis answers) and after every period without it. fc stays the caller's; ms receives the
// hlsedge_auth_fleet_* metrics and may be nil.
func New(cfg authz.Config, fc *fleet.Client, log *slog.Logger, ms *metrics.Set, opts ...Option) (*State, error) {
	if fc == nil {
		return nil, errors.New("redisstate: a fleet client is required")
	}
	o := options{clock: time.Now, janitor: true}
	for _, f := range opts {
		f(&o)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if ms == nil {
		ms = metrics.NewSet()
	}
	cfg.SetDefaults()
	var memOpts []authz.Option
	if !o.janitor {
		memOpts = append(memOpts, authz.WithoutJanitor())
	}
	mem, err := authz.NewMemState(cfg, log, memOpts...)
	if err != nil {
		return nil, err
	}
	s := &State{
		mem:         mem,
		fc:          fc,
		log:         log,
		clock:       o.clock,
		node:        fc.Node(),
		idle:        cfg.Sessions.IdleTimeout,
		soft:        cfg.Sessions.Soft,
		perUser:     cfg.Sessions.MaxPerUser,
		sessionsOff: cfg.Sessions.Disabled,
		maxEntries:  cfg.Bans.MaxEntries,
		ctlCh:       "{" + fc.Prefix() + "authz}:ctl",
		tab:         newTable(cfg.Sessions.MaxEntries, cfg.Sessions.Soft),
		refreshQ:    make(chan refreshJob, refreshQueue),
		throttle:    fleet.NewThrottle(fleet.RefreshInterval(cfg.Sessions.IdleTimeout)),
		ctlQ:        make(chan func(), controlQueue),
		changed:     make(chan struct{}),
		waiters:     map[string][]chan authz.SessionInfo{},
		kickWait:    o.kickWait,
	}
	if s.kickWait <= 0 {
		// The kick reaches the holder through Redis and its answer comes back the same way.
		s.kickWait = 2 * fc.RoundTrip()
	}
	s.rev.init()
	s.m = newStateMetrics(ms, s)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	// Subscribe first, load second (in resync), so that no change falls between the two.
	s.sub = fc.SubscribeRevocations(s.onRevocation)
	s.ctlSub = fc.Subscribe(s.ctlCh, s.onControl)
	for range refreshWorkers {
		s.wg.Add(1)
		go s.refresher()
	}
	s.wg.Add(1)
	go s.controller()
	if o.janitor {
		s.wg.Add(1)
		go s.janitor(janitorInterval(s.idle))
	}
	s.unhook = fc.OnResync(s.resync)
	return s, nil
}

func janitorInterval(idle time.Duration) time.Duration {
	return min(max(idle/4, 100*time.Millisecond), time.Second)
}

// Close stops the background work and the in-memory state's janitor and webhook. The fleet client stays open.
func (s *State) Close() {
	s.once.Do(func() {
		s.unhook()
		s.sub.Close()
		s.ctlSub.Close()
		s.cancel()
		s.wg.Wait()
		s.mem.Close()
	})
}

// Changed returns a channel closed at the next change of what the state shares with the fleet (a ban or kick
// applied or lifted, a re-sync done, a session refused or re-admitted on a refresh), so that tests and tools
// wait on a change instead of polling.
func (s *State) Changed() <-chan struct{} {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return s.changed
}

func (s *State) notify() {
	s.cmu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.cmu.Unlock()
}

// Revocations returns the bans and kicks in force, the fleet's included. It is the in-memory snapshot: the
// subscription replaces it as the fleet's change.
func (s *State) Revocations() *authz.Revocations { return s.mem.Revocations() }

// Sessions lists this node's open sessions that match f, oldest first. The fleet's are in the admin API, from
// every node's announcement.
func (s *State) Sessions(f authz.SessionFilter) []authz.SessionInfo { return s.mem.Sessions(f) }

// Viewers counts this node's active sessions per channel.
func (s *State) Viewers(now time.Time) map[string]int { return s.mem.Viewers(now) }

// Sweep closes the sessions idle at now and drops the bans, kicks and tracked sessions that ran out.
func (s *State) Sweep(now time.Time) {
	s.mem.Sweep(now)
	s.prune(now)
	s.tab.sweep(now.UnixNano(), int64(s.idle))
}

// Stats reports the session, ban and kick counters; bans and kicks include the fleet's.
func (s *State) Stats() authz.Stats { return s.mem.Stats() }

// Health says whether the fleet is reachable, for the admin API.
func (s *State) Health() fleet.Health { return s.fc.Health() }

// janitor drops what ran out: the fleet's bans and kicks expire on every member by themselves.
func (s *State) janitor(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			now := s.clock()
			s.prune(now)
			s.tab.sweep(now.UnixNano(), int64(s.idle))
		}
	}
}

// controller runs the follow-ups of fleet events off the subscription's reader goroutine, which must not block.
func (s *State) controller() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case f := <-s.ctlQ:
			f()
			// Sessions closed or a kick answered: waiters see it without polling.
			s.notify()
		}
	}
}

// later queues f for the controller; when the queue is full f is dropped and counted: what it does (closing
// sessions a ban covers, answering a kick request) is also done by other means (the refusal itself, a timeout).
func (s *State) later(f func()) {
	select {
	case s.ctlQ <- f:
	default:
		s.m.controlDropped.Inc()
	}
}
