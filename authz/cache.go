package authz

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// entry is one cached decision with the exact material it was made for. ristretto keys on a 64-bit hash, and
// neither a chance collision nor one crafted against a non-cryptographic hash may hand one viewer another's
// allow, so a hit compares token, channel and address byte for byte; that costs less than a second hash pass.
type entry struct {
	tok   string
	ch    string
	ip    netip.Addr // the zero Addr when the decision is shared across addresses (backend_key)
	aux   uint64     // the keyed query and user agent (decisionKey)
	hash  uint64     // the decision cache's key (decisionKey.hash)
	until int64      // unix nanos; the entry is not used at or after this instant
	d     Decision

	// staleUntil keeps a backend's decision past until, to stand in while every backend fails; 0: never.
	staleUntil int64
	// calls counts the backend calls made for this key (Flussonic's request_number).
	calls int
	// backend tells that a middleware made the decision; refused is then the session id of a viewer it let in
	// whom the session limit refused, which stays refused until the middleware is asked again, as Flussonic
	// keeps such a refusal for X-AuthDuration. 0: none.
	backend bool
	refused atomic.Uint64
	// epoch is the Authorizer (one per config reload) that made or last adopted the entry; another one checks
	// that the entry's group and keys still exist before it serves it (see adopt).
	epoch atomic.Uint64
	// gen is the ban generation this entry was last checked against, and block the outcome (blockNone,
	// blockBanned, blockKicked). A hit re-checks only when the generation moved.
	gen   atomic.Uint64
	block atomic.Uint32
	// child is the segment-window child last minted for this entry's viewer (children.go); nil: none yet.
	child atomic.Pointer[childMemo]
	// sess is the session id of the entry's first viewer (sessionid.go); nil: none yet.
	sess atomic.Pointer[sessionMemo]
	// hits counts the front's hits on this entry, so that every touchEvery-th one also reaches ristretto.
	hits atomic.Uint32
}

// matches tells whether the entry was made for exactly this material (see entry).
func (e *entry) matches(k decisionKey, tok, ch []byte) bool {
	return e.hash == k.hash && e.tok == string(tok) && e.ch == string(ch) && e.ip == k.ip && e.aux == k.aux
}

// decisionCache maps hash(token, channel, client IP) to a decision, and in a group with middlewares whatever
// else its backend_key names (backend_key.go). The client IP is part of the key for every token a local
// verifier accepts, bound or not: it costs a re-verification when a viewer's address changes and saves a
// branch that could get it wrong. The hash seeds are random per process.
type decisionCache struct {
	c       *ristretto.Cache[uint64, *entry]
	front   *front
	seed    maphash.Seed
	auxSeed maphash.Seed
	maxTTL  time.Duration
	denyTTL time.Duration
	epoch   uint64
}

func newRistretto(maxEntries int64) (*ristretto.Cache[uint64, *entry], error) {
	return ristretto.NewCache(&ristretto.Config[uint64, *entry]{
		NumCounters: maxEntries * 10,
		MaxCost:     maxEntries,
		BufferItems: 64,
		// Cost is one per decision; without this ristretto adds its own per-item overhead to the cost and holds a
		// small fraction of MaxEntries.
		IgnoreInternalCost: true,
	})
}

// key hashes (token, channel, address, aux). The token and the channel are hashed with the per-process seed, and
// the results are folded with the address and aux by 128-bit multiplications (wyhash's mixer): no input is
// concatenated with another, and a hit compares the material byte for byte anyway, so the key only has to
// spread entries and be unpredictable from outside. maphash.Bytes rather than maphash.Hash, whose buffered
// writes cost more than the hashing itself on a 200-byte JWT.
func (dc *decisionCache) key(tok, channel []byte, ip netip.Addr, aux uint64) uint64 {
	a := ip.Unmap().As16()
	lo, hi := binary.LittleEndian.Uint64(a[:8]), binary.LittleEndian.Uint64(a[8:])
	t := maphash.Bytes(dc.seed, tok)
	c := maphash.Bytes(dc.seed, channel)
	return mix64(t^lo, mix64(c^hi, aux))
}

// mix64 folds two 64-bit values into one: the two halves of their 128-bit product, each first xored with an odd
// constant so that a zero input does not zero the product.
func mix64(a, b uint64) uint64 {
	h, l := bits.Mul64(a^0xa0761d6478bd642f, b^0xe7037ed1a0b428db)
	return h ^ l
}

// get is the fast path: one lookup, no allocation, no clock read. It reports fresh=false with a non-nil entry
// when the entry ran out but may still stand in for failing backends; the entry also tells how many backend
// calls were made for the key.
func (dc *decisionCache) get(k decisionKey, tok, ch []byte, now int64) (e *entry, fresh bool) {
	slot := dc.front.slot(k.hash)
	if e = slot.Load(); e == nil || !e.matches(k, tok, ch) {
		// Slow path: ristretto, whose Get also feeds its admission policy through a buffer a goroutine drains.
		var ok bool
		if e, ok = dc.c.Get(k.hash); !ok || !e.matches(k, tok, ch) {
			return nil, false
		}
		slot.Store(e)
	} else if e.hits.Add(1)%touchEvery == 0 {
		// A hot entry still tells ristretto now and then that it is used, so that its admission policy keeps it.
		dc.c.Get(k.hash)
	}
	if now >= e.until {
		// Entries carry no ristretto TTL (its Get would read the clock on every hit); an outdated one is
		// dropped here, and unused ones age out through eviction.
		if now < e.staleUntil {
			return e, false
		}
		dc.drop(e)
		return nil, false
	}
	return e, true
}

// drop removes an entry that must not be served again from ristretto and the front.
func (dc *decisionCache) drop(e *entry) {
	dc.c.Del(e.hash)
	dc.front.slot(e.hash).CompareAndSwap(e, nil)
}

// front is a direct-mapped table of recently hit entries in front of ristretto: a slot per hash bucket, the
// newest entry wins it. ristretto's Get costs more than the rest of a cache hit (a sharded map lookup under a
// lock, then a push into the buffer that feeds its admission policy), and a viewer's token is asked about on
// every playlist reload and segment. An entry in the front is served under exactly the checks of one from
// ristretto (material, expiry, epoch, bans and kicks), so one that ristretto evicted meanwhile is still a right
// answer; the front only keeps it alive, at most one entry per slot. The slots are shared by the Authorizers of
// successive reloads, like the entries.
type front struct {
	slots []atomic.Pointer[entry]
	mask  uint64
}

// touchEvery is how often a front hit also reaches ristretto (a power of two).
const touchEvery = 64

// maxFrontSlots bounds the front: the entries it may keep alive past ristretto's eviction (a few hundred bytes
// each) and its own 8 bytes per slot.
const maxFrontSlots = 1 << 14

func newFront(maxEntries int64) *front {
	n := uint64(1)
	for n < uint64(maxEntries) && n < maxFrontSlots {
		n <<= 1
	}
	return &front{slots: make([]atomic.Pointer[entry], n), mask: n - 1}
}

func (f *front) slot(hash uint64) *atomic.Pointer[entry] { return &f.slots[hash&f.mask] }

// put caches d until the token's own end (h.until, unix nanos; 0 when it has none), capped by the configured
// TTLs, with the ban generation it was checked against and the outcome of that check. ristretto may drop the
// Set; then the next request decides again, which is only slower. It returns the entry, nil when d is not
// cached at all.
func (dc *decisionCache) put(k decisionKey, tok, ch []byte, d *Decision, h cacheHint, now time.Time, gen uint64, block uint32) *entry {
	ttl := dc.maxTTL
	if !d.Allowed() {
		ttl = dc.denyTTL
	}
	if h.until > 0 {
		if rem := time.Duration(h.until - now.UnixNano()); rem < ttl {
			ttl = rem
		}
	}
	if ttl <= 0 {
		return nil
	}
	e := &entry{tok: string(tok), ch: string(ch), ip: k.ip, aux: k.aux, hash: k.hash, until: now.UnixNano() + int64(ttl),
		d: *d, calls: h.calls, backend: h.backend}
	if h.stale > 0 {
		e.staleUntil = e.until + int64(h.stale)
	}
	e.d.token = nil
	e.d.sess = nil
	e.d.entry = nil
	e.gen.Store(gen)
	e.block.Store(block)
	e.epoch.Store(dc.epoch)
	dc.c.Set(k.hash, e, 1)
	// The front takes it at once: ristretto's Set lands through a buffer, and the viewer's next request may come
	// before it does.
	dc.front.slot(k.hash).Store(e)
	return e
}

// callCount is the backend calls made for the key of a previous entry; 0 without one.
func (e *entry) callCount() int {
	if e == nil {
		return 0
	}
	return e.calls
}
