package authz

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/cespare/xxhash/v2"
)

// sessionOf names one viewing session: the decision's session id (one credential on one channel, which child
// edge tokens carry) with the address and user agent mixed in, as the session table keys sessions. Two devices
// sharing a token are then two sessions with two ids, and a kick refuses one of them only. The hash has no
// per-process seed: a session keeps its id across restarts and nodes, and a kick shared by a fleet names it
// everywhere; base is already keyed with the edge secret, so the id cannot be forged from outside.
func sessionOf(base uint64, ip netip.Addr, ua []byte) uint64 {
	var b [32]byte
	binary.LittleEndian.PutUint64(b[:8], base)
	a := ip.Unmap().As16()
	copy(b[8:24], a[:])
	binary.LittleEndian.PutUint64(b[24:], xxhash.Sum64(sessionUA(ua)))
	if id := xxhash.Sum64(b[:]); id != 0 {
		return id
	}
	return 1 // 0 means no session
}

// sessionUA is the part of a user agent that tells sessions apart: the session table keeps no more of it.
func sessionUA(ua []byte) []byte {
	if len(ua) > maxSessionUA {
		return ua[:maxSessionUA]
	}
	return ua
}

// ownSession gives an allowed decision its viewer's own session id, and refuses it when that session was
// kicked, or refused by the session limit since a middleware last decided.
func (a *Authorizer) ownSession(d *Decision, g *group, req *Request, rev *Revocations, now int64) {
	d.base = d.SessionID
	d.SessionID = req.Memo.sessionOf(d.entry, d.SessionID, req.ClientIP, req.UserAgent)
	if rev.sessionKicked(d.SessionID, now) {
		*d = deny(ErrKicked, d.Kind, g.name)
		return
	}
	if e := d.entry; e != nil && e.backend && e.refused.Load() == d.SessionID {
		*d = deny(ErrSessionLimit, d.Kind, g.name)
	}
}

// sessionMemo is the session id an entry's first viewer got: most entries (a token on a channel from an address)
// only ever see one user agent, so their requests compare it instead of hashing it twice.
type sessionMemo struct {
	base uint64
	ip   netip.Addr
	ua   string
	id   uint64
}

// sessionOf is sessionOf, answered from the entry's memo when the request is its first viewer's. The memo is
// written once, by the entry's first viewer: an entry shared by many user agents (a middleware's backend_key)
// hashes for the others rather than allocate a memo per request. e may be nil.
func (e *entry) sessionOf(base uint64, ip netip.Addr, ua []byte) uint64 {
	if e == nil {
		return sessionOf(base, ip, ua)
	}
	ua = sessionUA(ua)
	if m := e.sess.Load(); m != nil {
		if m.base == base && m.ip == ip && m.ua == string(ua) {
			// Fast path: the entry's own viewer.
			return m.id
		}
		return sessionOf(base, ip, ua)
	}
	id := sessionOf(base, ip, ua)
	e.sess.CompareAndSwap(nil, &sessionMemo{base: base, ip: ip, ua: string(ua), id: id})
	return id
}

// holdRefusal keeps a session the limit refused refused until the middleware that let its viewer in is asked
// again, as Flussonic does for X-AuthDuration: otherwise it would get in as soon as another session of the
// user idled out. Local decisions keep no such memory: their viewer gets in when a slot frees.
func holdRefusal(d *Decision, err error) {
	if e := d.entry; e != nil && e.backend && errors.Is(err, ErrSessionLimit) {
		e.refused.Store(d.SessionID)
	}
}
