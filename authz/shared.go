package authz

import (
	"net/netip"
	"slices"
	"time"

	"github.com/hlsedge/hlsedge/authz/token"
)

// What a fleet's viewer state (authz/redisstate) builds on: it keeps sessions in a MemState and shares bans and
// kicks through a store, so it puts the fleet's bans and kicks in force beside MemState's own, closes the
// sessions they cover, and takes the kicks a close makes without MemState keeping them.

// NewBan checks r and builds the ban it asks for under id, as MemState.Ban does with ids of its own: a token
// becomes its fingerprint, an address or CIDR its canonical form.
func NewBan(r BanRequest, id string, now time.Time) (Ban, error) {
	b, err := newBan(r, now)
	b.ID = id
	return b, err
}

// SetShared replaces the bans and kicks a fleet shares with this state's. They are in force beside the local
// ones from the next request on (cached decisions included: the generation moves), count in Stats, and are
// bounded by the fleet, not by 'auth.bans.max_entries'. The slices are the state's afterwards.
func (m *MemState) SetShared(bans []Ban, kicks []Kick) {
	b := m.bans
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sharedBans, b.sharedKicks = slices.Clip(bans), slices.Clip(kicks)
	b.publish()
}

// CloseBanned closes the open sessions b covers, with reason "banned", and returns how many.
func (m *MemState) CloseBanned(b Ban, now time.Time) int {
	if m.sessions == nil {
		return 0
	}
	var prefix netip.Prefix
	if b.IP != "" {
		prefix, _ = parseIPOrPrefix(b.IP)
	}
	fp := token.ParseFingerprint(b.Token)
	return m.sessions.closeWhere(func(s *session) bool {
		return (b.IP != "" && prefix.Contains(s.ip)) || (b.User != "" && s.user == b.User) || (fp != 0 && s.fp == fp)
	}, "banned", now)
}

// CloseKicked closes the open sessions that kicks refuse (a session id they have used, or their token on their
// channel), with reason "kicked", and returns how many. It records no kick: the caller's kicks are in force
// already, through SetShared.
func (m *MemState) CloseKicked(kicks []Kick, now time.Time) int {
	if m.sessions == nil || len(kicks) == 0 {
		return 0
	}
	return m.sessions.closeWhere(func(s *session) bool {
		for _, k := range kicks {
			switch {
			case k.SessionID != 0 && (s.id == k.SessionID || slices.Contains(s.sids[:], k.SessionID)):
				return true
			case k.Fingerprint != 0 && s.fp == k.Fingerprint && s.channel == k.Channel:
				return true
			}
		}
		return false
	}, "kicked", now)
}

// CloseSession closes the session with the given id, as Kick does but with reason, and returns it with the
// kicks that keep it closed until until (unix nanos; 0: the token's expiry, at most edge.max_ttl). With keep
// the kicks are recorded here, as Kick's are; without, they are the caller's to put in force (SetShared).
func (m *MemState) CloseSession(id, reason string, now time.Time, until int64, keep bool) (SessionInfo, []Kick, error) {
	if m.sessions == nil {
		return SessionInfo{}, nil, ErrSessionsOff
	}
	s := m.sessions.find(id)
	if s == nil || !m.sessions.remove(s) {
		return SessionInfo{}, nil, ErrNoSession
	}
	ks := m.kickEntries(s, now, until)
	if keep {
		m.bans.kick(ks)
	}
	m.logClose(s, reason, now)
	return m.sessions.snapshot(s), ks, nil
}
