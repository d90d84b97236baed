package authz

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"net/netip"

	"github.com/hlsedge/hlsedge/authz/token"
)

// What a middleware's decision is cached on besides the channel and the token (GroupConfig.BackendKey).
const (
	KeyQuery = "query"
	KeyIP    = "ip"
	KeyUA    = "ua"
)

// keyParts is a group's backend_key as bits. A group without backends keys on the address only, as every
// decision did before backend_key existed.
type keyParts uint8

const (
	partQuery keyParts = 1 << iota
	partIP
	partUA
)

// parseBackendKey reads backend_key; f is the group's YAML path for errors.
func parseBackendKey(list []string, backends bool, f string) (keyParts, error) {
	if !backends {
		if len(list) > 0 {
			return 0, fmt.Errorf("'%s.backend_key' needs '%s.backends'", f, f)
		}
		return partIP, nil
	}
	var p keyParts
	for i, k := range list {
		var b keyParts
		switch k {
		case KeyQuery:
			b = partQuery
		case KeyIP:
			b = partIP
		case KeyUA:
			b = partUA
		default:
			return 0, fmt.Errorf("'%s.backend_key[%d]' must be query, ip or ua, got %q", f, i, k)
		}
		if p&b != 0 {
			return 0, fmt.Errorf("'%s.backend_key[%d]' repeats %q", f, i, k)
		}
		p |= b
	}
	return p, nil
}

// parts is what the decision of a request bearing tok is keyed on. A token stands for the query: child URIs
// carry it alone, so keying on the rest of the query would ask the middleware again for every playlist and
// segment. A token that a local verifier of the group accepts is always keyed on the address, since the
// verifier may have bound it to one.
func (g *group) parts(tok []byte) keyParts {
	p := g.key
	if len(tok) > 0 {
		p &^= partQuery
		if p&partIP == 0 && g.verifies(token.KindOf(tok)) {
			p |= partIP
		}
	}
	return p
}

// verifies tells whether a local verifier of the group checks tokens of kind. A group with backends checks
// edge tokens whatever it accepts from viewers: they carry the children of the viewers its middlewares let in
// without a token.
func (g *group) verifies(kind token.Kind) bool {
	return g.accept[kind] || (kind == token.KindEdge && len(g.backends) > 0)
}

// decisionKey is what one decision is cached and coalesced on.
type decisionKey struct {
	hash uint64     // the decision cache's key
	ip   netip.Addr // the viewer's address; the zero Addr when the decision is shared across addresses
	aux  uint64     // hash of the keyed query and user agent; 0 when neither is keyed
}

// lookup computes the key of a request's decision. The fast path (a group keyed on the address alone, or a
// token in a group with the default backend_key) hashes what the cache always did.
func (dc *decisionCache) lookup(g *group, tok, ch []byte, req *Request) decisionKey {
	k := decisionKey{ip: req.ClientIP}
	if p := g.parts(tok); p != partIP {
		// Slow path: what the group's backend_key adds or leaves out.
		if p&partIP == 0 {
			k.ip = netip.Addr{}
		}
		k.aux = dc.auxOf(p, req)
	}
	k.hash = dc.key(tok, ch, k.ip, k.aux)
	return k
}

// auxOf hashes the keyed query and user agent with a seed of their own: a hit compares token, channel and
// address byte for byte, and these two by a second, independent 64-bit hash, so that no viewer gets another's
// decision by a collision without storing every query and user agent.
func (dc *decisionCache) auxOf(p keyParts, req *Request) uint64 {
	if p&(partQuery|partUA) == 0 {
		return 0
	}
	var b [16]byte
	if p&partQuery != 0 {
		var h maphash.Hash
		h.SetSeed(dc.auxSeed)
		eachKeyParam(req.RawQuery, func(kv []byte) {
			h.Write(kv)
			h.WriteByte('&')
		})
		binary.LittleEndian.PutUint64(b[:8], h.Sum64())
	}
	if p&partUA != 0 {
		binary.LittleEndian.PutUint64(b[8:], maphash.Bytes(dc.auxSeed, sessionUA(req.UserAgent)))
	}
	return maphash.Bytes(dc.auxSeed, b[:]) | 1
}

// eachKeyParam calls f with each `name=value` of a raw query as the viewer sent it, except the LL-HLS delivery
// directives (`_HLS_msn`, `_HLS_part`, `_HLS_skip`), which change with every blocking playlist reload and never
// carry a credential.
func eachKeyParam(raw []byte, f func(kv []byte)) {
	for len(raw) > 0 {
		kv := raw
		if i := bytes.IndexByte(raw, '&'); i >= 0 {
			kv, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if len(kv) > 0 && !bytes.HasPrefix(kv, []byte("_HLS_")) {
			f(kv)
		}
	}
}

// keyQuery is the query a token-less request's decision is keyed on, which is then its credential.
func keyQuery(raw []byte) []byte {
	var out []byte
	eachKeyParam(raw, func(kv []byte) {
		if len(out) > 0 {
			out = append(out, '&')
		}
		out = append(out, kv...)
	})
	return out
}

// backendIdentity is whom a middleware's decision is for: the credential and the session, derived from the
// same inputs as the decision's key, so that every call made for one key (Flussonic's new_session and its
// update_session calls) names one session.
type backendIdentity struct {
	// base is the decision's session id: the credential on the channel, from the keyed address. Child edge
	// tokens carry it; each request's session id mixes in its address and user agent (sessionOf).
	base uint64
	// session is what the middleware is told: base with the keyed address and user agent mixed in, equal to
	// the edge's own session id when both are keyed.
	session uint64
	// fp names the credential in sessions and bans: the token, or for a request without one its keyed query;
	// 0 when there is neither.
	fp token.Fingerprint
	// bound tells that the decision holds for the viewer's address only.
	bound bool
}

func (a *Authorizer) backendIdentity(g *group, tok, ch []byte, req *Request) backendIdentity {
	p := g.parts(tok)
	var id backendIdentity
	cred := tok
	switch {
	case len(tok) > 0:
		id.fp = token.FingerprintOf(tok)
	case p&partQuery != 0:
		if q := keyQuery(req.RawQuery); len(q) > 0 {
			id.fp = token.FingerprintOf(q)
			// A leading NUL keeps a query from naming the same session as a token spelt like it.
			cred = append([]byte{0}, q...)
		}
	}
	var ip netip.Addr
	if p&partIP != 0 {
		ip, id.bound = req.ClientIP, true
	}
	var ua []byte
	if p&partUA != 0 {
		ua = req.UserAgent
	}
	credFP := id.fp
	if len(tok) == 0 {
		credFP = token.FingerprintOf(cred)
	}
	id.base = a.edge.SessionID(credFP, ch, ip)
	id.session = sessionOf(id.base, ip, ua)
	return id
}
