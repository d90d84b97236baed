package authz

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// entry is one cached decision. check is a second, independently seeded hash of the key material: ristretto
// keys on 64 bits, and a collision must never hand one viewer another viewer's allow.
type entry struct {
	check uint64
	until int64 // unix nanos; the entry is not used at or after this instant, whatever ristretto's clock says
	d     Decision
}

// decisionCache maps hash(token, channel, client IP) to a decision. The client IP is always part of the key, bound
// token or not: it costs a re-verification when a viewer's address changes and saves a branch that could get it
// wrong. Hash seeds are random per process, so the keys cannot be aimed at from outside.
type decisionCache struct {
	c              *ristretto.Cache[uint64, *entry]
	seedKey, seedC maphash.Seed
	maxTTL         time.Duration
	denyTTL        time.Duration
}

func newDecisionCache(cfg CacheConfig) (*decisionCache, error) {
	c, err := ristretto.NewCache(&ristretto.Config[uint64, *entry]{
		NumCounters: cfg.MaxEntries * 10,
		MaxCost:     cfg.MaxEntries,
		BufferItems: 64,
		// Cost is one per decision; without this ristretto adds its own per-item overhead to the cost and holds a
		// small fraction of MaxEntries.
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, err
	}
	return &decisionCache{c: c, seedKey: maphash.MakeSeed(), seedC: maphash.MakeSeed(), maxTTL: cfg.MaxTTL, denyTTL: cfg.DenyTTL}, nil
}

func (dc *decisionCache) hash(seed maphash.Seed, tok, channel []byte, ip *[16]byte) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	// Lengths first, so that no two (token, channel) pairs concatenate to the same bytes.
	var n [4]byte
	binary.LittleEndian.PutUint16(n[:2], uint16(len(tok)))
	binary.LittleEndian.PutUint16(n[2:], uint16(len(channel)))
	h.Write(n[:])
	h.Write(tok)
	h.Write(channel)
	h.Write(ip[:])
	return h.Sum64()
}

func (dc *decisionCache) keys(tok, channel []byte, ip netip.Addr) (key, check uint64) {
	a := ip.Unmap().As16()
	return dc.hash(dc.seedKey, tok, channel, &a), dc.hash(dc.seedC, tok, channel, &a)
}

// get is the fast path: one lookup, no allocation.
func (dc *decisionCache) get(key, check uint64, now int64) (*entry, bool) {
	e, ok := dc.c.Get(key)
	if !ok || e.check != check || now >= e.until {
		return nil, false
	}
	return e, true
}

// put caches d until the token's own end (until, unix nanos; 0 when it has none), capped by the configured TTLs.
// ristretto may drop the Set; then the next request verifies again, which is only slower.
func (dc *decisionCache) put(key, check uint64, d *Decision, until int64, now time.Time) {
	ttl := dc.maxTTL
	if !d.Allowed() {
		ttl = dc.denyTTL
	}
	if until > 0 {
		if rem := time.Duration(until - now.UnixNano()); rem < ttl {
			ttl = rem
		}
	}
	if ttl <= 0 {
		return
	}
	e := &entry{check: check, until: now.UnixNano() + int64(ttl), d: *d}
	e.d.token = nil
	dc.c.SetWithTTL(key, e, 1, ttl)
}

func (dc *decisionCache) close() { dc.c.Close() }
