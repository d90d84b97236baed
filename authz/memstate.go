package authz

import (
	"log/slog"
	"sync"
	"time"
)

// MemState is the ViewerState of one edge: sessions, bans and kicks in this process's memory, the session
// webhook, and a janitor that closes idle sessions and drops the bans and kicks that ran out.
type MemState struct {
	log      *slog.Logger
	bans     *banList
	sessions *sessionTable // nil when sessions are disabled
	hook     *webhook      // nil without a webhook URL
	kickTTL  time.Duration // how long a kick refuses a token that has no expiry
	clock    func() time.Time
	stop     chan struct{}
	done     chan struct{}
	closed   sync.Once
}

// NewMemState builds the in-memory viewer state from the sessions, bans and edge sections of cfg, and starts
// its janitor (unless WithoutJanitor) and webhook, which Close stops. Hand it to New with WithState
// to keep sessions, bans and kicks across Authorizers.
func NewMemState(cfg Config, log *slog.Logger, opts ...Option) (*MemState, error) {
	cfg.Sessions.setDefaults()
	cfg.Bans.setDefaults()
	if cfg.Edge.MaxTTL == 0 {
		cfg.Edge.MaxTTL = defaultEdgeMaxTTL
	}
	if err := cfg.Sessions.validate(); err != nil {
		return nil, err
	}
	if err := cfg.Bans.validate(); err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	return newMemState(&cfg, log, o.clock), nil
}

// newMemState builds the state of a validated, defaulted config; a nil clock runs no janitor.
func newMemState(cfg *Config, log *slog.Logger, clock func() time.Time) *MemState {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &MemState{log: log, bans: newBanList(cfg.Bans.MaxEntries), kickTTL: cfg.Edge.MaxTTL, clock: clock}
	if !cfg.Sessions.Disabled {
		m.sessions = newSessionTable(cfg.Sessions, log)
		idle := cfg.Sessions.IdleTimeout
		m.sessions.onClose = func(s *session, reason string, now time.Time) {
			// A session closed by the user's newer one stays closed for an idle period, or it would simply
			// reopen on its next segment.
			m.kick(s, reason, now, now.Add(idle).UnixNano())
		}
		if cfg.Sessions.Webhook.URL != "" {
			m.hook = newWebhook(cfg.Sessions.Webhook, log)
			m.sessions.hook = m.hook
		}
	}
	if clock != nil {
		m.stop, m.done = make(chan struct{}), make(chan struct{})
		go m.janitor(janitorInterval(cfg.Sessions.IdleTimeout))
	}
	return m
}

func janitorInterval(idle time.Duration) time.Duration {
	return min(max(idle/4, 100*time.Millisecond), time.Second)
}

// janitor closes idle sessions and drops expired bans and kicks.
func (m *MemState) janitor(every time.Duration) {
	defer close(m.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.Sweep(m.clock())
		}
	}
}

// Close stops the janitor and flushes the webhook's queue.
func (m *MemState) Close() {
	m.closed.Do(func() {
		if m.stop != nil {
			close(m.stop)
			<-m.done
		}
		if m.hook != nil {
			m.hook.close()
		}
	})
}

// Revocations returns the bans and kicks in force.
func (m *MemState) Revocations() *Revocations { return m.bans.load() }

// Track counts the request into the viewer's session.
func (m *MemState) Track(v Viewer, now int64) (Session, error) {
	if m.sessions == nil {
		return nil, nil
	}
	s, err := m.sessions.track(&v, now)
	if s == nil {
		// A nil *session must not become a non-nil Session.
		return nil, err
	}
	return s, err
}

// Ban adds a ban and closes the sessions it covers.
func (m *MemState) Ban(r BanRequest, now time.Time) (Ban, error) {
	b, err := m.bans.add(r, now)
	if err != nil {
		return b, err
	}
	m.log.Info("authz: ban added", "id", b.ID, "ip", b.IP, "user", b.User, "token", b.Token, "expires", b.Expires)
	m.CloseBanned(b, now)
	return b, nil
}

// Unban lifts a ban by id; it reports whether there was one.
func (m *MemState) Unban(id string) bool {
	ok := m.bans.remove(id)
	if ok {
		m.log.Info("authz: ban lifted", "id", id)
	}
	return ok
}

// Bans lists the bans in force.
func (m *MemState) Bans(now time.Time) []Ban { return m.bans.list(now) }

// Kick closes a session; its session ids are refused everywhere, and its token on that channel unless another
// open session of the token watches it (a second device sharing the token, which the kick does not target),
// until the token expires (or for edge.max_ttl when it has none).
func (m *MemState) Kick(id string, now time.Time) (SessionInfo, error) {
	if m.sessions == nil {
		return SessionInfo{}, ErrSessionsOff
	}
	s := m.sessions.find(id)
	if s == nil || !m.sessions.remove(s) {
		return SessionInfo{}, ErrNoSession
	}
	m.kick(s, "kicked", now, 0)
	return m.sessions.snapshot(s), nil
}

// kick refuses a removed session's ids and token until until (unix nanos; 0: the token's expiry) and logs
// the close.
func (m *MemState) kick(s *session, reason string, now time.Time, until int64) {
	m.bans.kick(m.kickEntries(s, now, until))
	m.logClose(s, reason, now)
}

// kickEntries are the kicks that keep a removed session closed until until (unix nanos; 0: the token's
// expiry, at most edge.max_ttl).
func (m *MemState) kickEntries(s *session, now time.Time, until int64) []Kick {
	sh := &m.sessions.shards[s.key%sessionShards]
	sh.mu.RLock()
	sids := s.sids
	ch := s.channel
	sh.mu.RUnlock()
	fp := s.fp
	if fp != 0 && m.sessions.watching(fp, ch, s) {
		// Refusing the token on the channel would refuse the other session too; its own ids name this one.
		fp = 0
	}
	if until == 0 {
		until = now.Add(m.kickTTL).UnixNano()
		if s.expires > 0 && s.expires*int64(time.Second) < until {
			until = s.expires * int64(time.Second)
		}
	}
	return kickEntries(sids[:], fp, ch, until)
}

// logClose emits and logs the close of a kicked session.
func (m *MemState) logClose(s *session, reason string, now time.Time) {
	m.sessions.emit("close", s, reason, now.UnixNano())
	m.log.Info("authz: session kicked", "id", sessionIDString(s.id), "reason", reason)
}

// Clients counts the open sessions on a channel and overall, for the middlewares (ClientCounter).
func (m *MemState) Clients(channel []byte) (stream, total int) {
	if m.sessions == nil {
		return 0, 0
	}
	return m.sessions.clients(channel)
}

// Sessions lists the open sessions that match f, oldest first.
func (m *MemState) Sessions(f SessionFilter) []SessionInfo {
	if m.sessions == nil {
		return []SessionInfo{}
	}
	return m.sessions.list(f)
}

// Viewers counts the active sessions per channel.
func (m *MemState) Viewers(now time.Time) map[string]int {
	if m.sessions == nil {
		return map[string]int{}
	}
	return m.sessions.viewers(now.UnixNano())
}

// Sweep closes the sessions idle at now and drops the bans and kicks that ran out.
func (m *MemState) Sweep(now time.Time) {
	if m.sessions != nil {
		m.sessions.sweep(now)
	}
	m.bans.prune(now)
}

// Stats reports the session, ban and kick counters.
func (m *MemState) Stats() Stats {
	var st Stats
	if t := m.sessions; t != nil {
		st.Sessions = SessionStats{Open: t.count.Load(), Opened: t.opened.Load(), Closed: t.closed.Load(),
			Refused: t.refused.Load(), Untracked: t.untracked.Load()}
		if t.hook != nil {
			st.Sessions.WebhookSent = t.hook.sent.Load()
			st.Sessions.WebhookDropped = t.hook.dropped.Load()
			st.Sessions.WebhookFailed = t.hook.failed.Load()
		}
	}
	st.Bans, st.Kicks = m.bans.counts()
	return st
}
