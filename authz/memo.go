package authz

import "net/netip"

// Memo is what one connection's last requests were decided with. A keep-alive player asks about the same token
// on the same channel from the same address over and over (its playlist reloads, and its segments with their
// own token in between), and a memo answers those without hashing the request or looking it up: the entry it
// remembers is checked exactly as a cache hit is (expiry, epoch, bans and kicks). The proxy keeps one per
// connection and hands it over in Request.Memo; one request at a time uses it. The zero Memo is empty.
type Memo struct {
	slots [memoSlots]memoSlot
	// hits counts the memo's answers, so that every touchEvery-th request takes the cache's way and ristretto's
	// admission policy still sees the entries in use. It is the connection's own: a count in the entry, which
	// every connection of a token shares, would be a write to a shared cache line on every request.
	hits uint32
	// track is the session of the connection's last tracked request (TrackHint).
	track TrackHint
	// sid is the session id of the connection's last allowed request (sessionOf).
	sid sessionIDMemo
}

// sessionIDMemo is a session id and what it was derived from.
type sessionIDMemo struct {
	base uint64
	ip   netip.Addr
	ua   []byte // the connection's own copy, reused
	id   uint64 // 0: none yet
}

// sessionOf is the session id of base for ip and ua, answered without hashing when the connection's last request
// had the same ones. A connection comes from one address and nearly always one user agent, but its entry's memo
// (entry.sessionOf) is its first viewer's: another device behind the address with the same token, or a prober
// that asked first, would otherwise hash on every request. m and e may be nil.
func (m *Memo) sessionOf(e *entry, base uint64, ip netip.Addr, ua []byte) uint64 {
	if m == nil {
		return e.sessionOf(base, ip, ua)
	}
	ua = sessionUA(ua)
	if c := &m.sid; c.id != 0 && c.base == base && c.ip == ip && string(c.ua) == string(ua) {
		// Fast path: the connection's viewer again.
		return c.id
	}
	id := e.sessionOf(base, ip, ua)
	m.sid = sessionIDMemo{base: base, ip: ip, ua: append(m.sid.ua[:0], ua...), id: id}
	return id
}

// count counts an answer and reports whether the memo may give it (false: look it up in the cache this time).
func (m *Memo) count() bool {
	m.hits++
	return m.hits%touchEvery != 0
}

// memoSlots is two: a player's playlist reloads and its segments carry different tokens (the child and the
// media child), and both come down the same connection.
const memoSlots = 2

type memoSlot struct {
	a *Authorizer // the Authorizer that served e; another one (after a reload) looks everything up again
	g *group      // the group of e's channel under a
	e *entry
}

// find returns the slot remembering a decision for exactly this token, channel and address under a, nil
// without one. Only entries keyed on the token, channel and address alone (no backend_key extras) are
// remembered, so a match is the entry the cache lookup would find.
func (m *Memo) find(a *Authorizer, tok, ch []byte, ip netip.Addr) *memoSlot {
	for i := range m.slots {
		s := &m.slots[i]
		if s.a == a && s.e != nil && s.e.tok == string(tok) && s.e.ch == string(ch) && s.e.ip == ip && s.e.aux == 0 {
			return s
		}
	}
	return nil
}

// group returns the group the memo knows for ch under a, nil when it knows none.
func (m *Memo) group(a *Authorizer, ch []byte) *group {
	for i := range m.slots {
		if s := &m.slots[i]; s.a == a && s.e != nil && s.e.ch == string(ch) {
			return s.g
		}
	}
	return nil
}

// remember puts e first, moving the other slot down.
func (m *Memo) remember(a *Authorizer, g *group, e *entry) {
	if m.slots[0].e == e && m.slots[0].a == a {
		return
	}
	m.slots[1] = m.slots[0]
	m.slots[0] = memoSlot{a: a, g: g, e: e}
}
