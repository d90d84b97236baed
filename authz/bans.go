package authz

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hlsedge/hlsedge/authz/token"
)

// BansConfig bounds the operator's run-time bans and kicks.
type BansConfig struct {
	// MaxEntries bounds bans and kicked sessions together; a ban beyond it is refused. Default 10000.
	MaxEntries int `yaml:"max_entries"`
}

const defaultMaxBans = 10000

func (c *BansConfig) setDefaults() {
	if c.MaxEntries == 0 {
		c.MaxEntries = defaultMaxBans
	}
}

func (c *BansConfig) validate() error {
	if c.MaxEntries < 0 || c.MaxEntries > 10_000_000 {
		return errors.New("'auth.bans.max_entries' must be between 1 and 10000000")
	}
	return nil
}

// BanRequest asks for one ban; exactly one of IP, User and Token is set.
type BanRequest struct {
	// IP is an address or CIDR.
	IP string
	// User is a user id as sessions show it (JWT sub, edge token user, X-UserId, X-Session-Name).
	User string
	// Token is the token itself, or its fingerprint as sessions show it (`~` and 16 hex digits).
	Token string
	// TTL ends the ban after this long; 0 never does.
	TTL time.Duration
	// Reason is kept for the operator.
	Reason string
}

// Ban is one active ban. A token ban shows only the token's fingerprint.
type Ban struct {
	ID      string    `json:"id"`
	IP      string    `json:"ip,omitempty"`
	User    string    `json:"user,omitempty"`
	Token   string    `json:"token,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
}

// until is the ban's end in unix nanos; 0: never.
func (b *Ban) until() int64 {
	if b.Expires.IsZero() {
		return 0
	}
	return b.Expires.UnixNano()
}

// Kick is one refusal of a kicked session, until Until (unix nanos): its session id on every channel, or its
// token on its channel.
type Kick struct {
	// SessionID is refused everywhere; 0 when this kick is the token's.
	SessionID uint64
	// Fingerprint is the token refused on Channel; 0 when this kick is a session id's.
	Fingerprint token.Fingerprint
	Channel     string
	Until       int64
}

// Errors of the admin operations.
var (
	ErrBanRequest   = errors.New("a ban needs exactly one of ip, user or token")
	ErrBanListFull  = errors.New("ban list full")
	ErrNoSession    = errors.New("no such session")
	ErrSessionsOff  = errors.New("sessions are disabled")
	errBadBanIP     = errors.New("ip must be an address or CIDR")
	errBadBanTTL    = errors.New("ttl must not be negative")
	errBadBanReason = errors.New("reason must be at most 256 bytes")
)

// Revocations is one immutable generation of bans and kicks, which every request reads without locking. A
// ViewerState publishes a new one with the next generation number whenever its lists change; cached
// decisions remember the generation they were checked against and are checked again when it moved, so a ban
// or kick applies to the very next request without scanning the decision cache.
type Revocations struct {
	gen      uint64
	empty    bool
	addrs    map[netip.Addr]int64
	prefixes []prefixBan
	users    map[string]int64
	tokens   map[token.Fingerprint]int64
	sids     map[uint64]int64
	chToks   map[uint64]int64
	seed     maphash.Seed
}

type prefixBan struct {
	prefix netip.Prefix
	until  int64
}

// NewRevocations indexes bans and kicks for the request path as generation gen. Entries that do not parse (a
// ban's IP, a token that is not a fingerprint) refuse nothing.
func NewRevocations(gen uint64, bans []Ban, kicks []Kick) *Revocations {
	r := &Revocations{gen: gen, empty: len(bans) == 0 && len(kicks) == 0, seed: maphash.MakeSeed()}
	for i := range bans {
		x := &bans[i]
		until := x.until()
		switch {
		case x.IP != "":
			p, err := parseIPOrPrefix(x.IP)
			switch {
			case err != nil:
			case p.IsSingleIP():
				keepLongest(&r.addrs, p.Addr(), until)
			default:
				r.prefixes = append(r.prefixes, prefixBan{p, until})
			}
		case x.User != "":
			keepLongest(&r.users, x.User, until)
		default:
			if fp := token.ParseFingerprint(x.Token); fp != 0 {
				keepLongest(&r.tokens, fp, until)
			}
		}
	}
	for _, k := range kicks {
		if k.SessionID != 0 {
			keepLongest(&r.sids, k.SessionID, k.Until)
		}
		if k.Fingerprint != 0 {
			keepLongest(&r.chToks, chTokKey(r.seed, k.Fingerprint, []byte(k.Channel)), k.Until)
		}
	}
	return r
}

// keepLongest records until for k unless an entry that lasts longer is there (0 lasts forever).
func keepLongest[K comparable](m *map[K]int64, k K, until int64) {
	if *m == nil {
		*m = map[K]int64{}
	}
	if old, ok := (*m)[k]; !ok || (old != 0 && (until == 0 || until > old)) {
		(*m)[k] = until
	}
}

func active(until, now int64) bool { return until == 0 || now < until }

// ipBanned is checked on every request while IP bans exist.
func (r *Revocations) ipBanned(ip netip.Addr, now int64) bool {
	if len(r.addrs) == 0 && len(r.prefixes) == 0 {
		return false
	}
	ip = ip.Unmap().WithZone("")
	if u, ok := r.addrs[ip]; ok && active(u, now) {
		return true
	}
	for _, p := range r.prefixes {
		if p.prefix.Contains(ip) && active(p.until, now) {
			return true
		}
	}
	return false
}

// tokenBanned tells whether a token that was let through unverified is banned; the fingerprint is only
// computed while token bans exist.
func (r *Revocations) tokenBanned(tok []byte, now int64) bool {
	if len(r.tokens) == 0 {
		return false
	}
	u, ok := r.tokens[token.FingerprintOf(tok)]
	return ok && active(u, now)
}

// Block codes kept in cache entries.
const (
	blockNone uint32 = iota
	blockBanned
	blockKicked
)

var blockErrs = [...]error{nil, ErrBanned, ErrKicked}

// check tells whether an allowed decision is now refused by a ban or kick.
func (r *Revocations) check(d *Decision, ch []byte, ip netip.Addr, now int64) uint32 {
	if r.empty {
		return blockNone
	}
	if r.ipBanned(ip, now) {
		return blockBanned
	}
	if d.fp != 0 {
		if u, ok := r.tokens[d.fp]; ok && active(u, now) {
			return blockBanned
		}
	}
	if d.UserID != "" {
		if u, ok := r.users[d.UserID]; ok && active(u, now) {
			return blockBanned
		}
	}
	if u, ok := r.sids[d.SessionID]; ok && d.SessionID != 0 && active(u, now) {
		return blockKicked
	}
	if d.fp != 0 && len(r.chToks) > 0 {
		if u, ok := r.chToks[chTokKey(r.seed, d.fp, ch)]; ok && active(u, now) {
			return blockKicked
		}
	}
	return blockNone
}

// sessionKicked tells whether a viewer's own session id was kicked; it is checked on every request while kicks
// exist, since one decision may serve several sessions (devices sharing a token).
func (r *Revocations) sessionKicked(sid uint64, now int64) bool {
	if len(r.sids) == 0 {
		return false
	}
	u, ok := r.sids[sid]
	return ok && active(u, now)
}

func chTokKey(seed maphash.Seed, fp token.Fingerprint, ch []byte) uint64 {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(fp))
	binary.LittleEndian.PutUint64(b[8:], maphash.Bytes(seed, ch))
	return maphash.Bytes(seed, b[:]) | 1
}

// banList is MemState's authoritative list of bans and kicks behind the published Revocations.
type banList struct {
	mu    sync.Mutex
	max   int
	seq   uint64
	bans  []Ban
	kicks []Kick
	// sharedBans and sharedKicks are a fleet's, set as a whole by SetShared; they are in force beside the
	// local ones and bounded by the fleet.
	sharedBans  []Ban
	sharedKicks []Kick
	snap        atomic.Pointer[Revocations]
}

func newBanList(max int) *banList {
	b := &banList{max: max}
	b.snap.Store(NewRevocations(0, nil, nil))
	return b
}

func (b *banList) load() *Revocations { return b.snap.Load() }

// publish builds the next generation; the caller holds mu.
func (b *banList) publish() {
	bans, kicks := b.bans, b.kicks
	if len(b.sharedBans) > 0 {
		bans = append(slices.Clip(bans), b.sharedBans...)
	}
	if len(b.sharedKicks) > 0 {
		kicks = append(slices.Clip(kicks), b.sharedKicks...)
	}
	b.snap.Store(NewRevocations(b.snap.Load().gen+1, bans, kicks))
}

func (b *banList) add(r BanRequest, now time.Time) (Ban, error) {
	x, err := newBan(r, now)
	if err != nil {
		return Ban{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.bans)+len(b.kicks) >= b.max {
		return Ban{}, ErrBanListFull
	}
	b.seq++
	x.ID = "b" + strconv.FormatUint(b.seq, 10)
	b.bans = append(b.bans, x)
	b.publish()
	return x, nil
}

// newBan checks r and builds the ban it asks for, without an id: a token becomes its fingerprint, an address
// or CIDR its canonical form.
func newBan(r BanRequest, now time.Time) (Ban, error) {
	n := 0
	for _, v := range []string{r.IP, r.User, r.Token} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return Ban{}, ErrBanRequest
	}
	if r.TTL < 0 {
		return Ban{}, errBadBanTTL
	}
	if len(r.Reason) > 256 {
		return Ban{}, errBadBanReason
	}
	x := Ban{Reason: r.Reason, Created: now.UTC()}
	if r.TTL > 0 {
		x.Expires = now.Add(r.TTL).UTC()
	}
	switch {
	case r.IP != "":
		p, err := parseIPOrPrefix(r.IP)
		if err != nil {
			return Ban{}, errBadBanIP
		}
		x.IP = p.String()
		if p.IsSingleIP() {
			x.IP = p.Addr().String()
		}
	case r.User != "":
		if len(r.User) > token.MaxUserIDBytes {
			return Ban{}, token.ErrUserIDTooLong
		}
		x.User = r.User
	default:
		fp := token.ParseFingerprint(r.Token)
		if fp == 0 {
			fp = token.FingerprintOf([]byte(r.Token))
		}
		x.Token = fp.String()
	}
	return x, nil
}

func (b *banList) remove(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, x := range b.bans {
		if x.ID == id {
			b.bans = slices.Delete(b.bans, i, i+1)
			b.publish()
			return true
		}
	}
	return false
}

func (b *banList) list(now time.Time) []Ban {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Ban, 0, len(b.bans))
	for _, x := range b.bans {
		if active(x.until(), now.UnixNano()) {
			out = append(out, x)
		}
	}
	return out
}

// kickEntries are the refusals that keep a kicked session closed: its session ids, and the token on the
// channel, until the given instant.
func kickEntries(sids []uint64, fp token.Fingerprint, ch string, until int64) []Kick {
	ks := make([]Kick, 0, len(sids)+1)
	for _, sid := range sids {
		if sid != 0 {
			ks = append(ks, Kick{SessionID: sid, Until: until})
		}
	}
	if fp != 0 {
		ks = append(ks, Kick{Fingerprint: fp, Channel: ch, Until: until})
	}
	return ks
}

// kick records kicks. Kicks past the bound replace the oldest ones rather than fail: a kick is the operator's
// last word on a viewer who is watching now.
func (b *banList) kick(ks []Kick) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range ks {
		if len(b.bans)+len(b.kicks) >= b.max && len(b.kicks) > 0 {
			b.kicks = slices.Delete(b.kicks, 0, 1)
		}
		b.kicks = append(b.kicks, k)
	}
	b.publish()
}

// prune drops what has run out, so that lists stay bounded by what is in force.
func (b *banList) prune(now time.Time) {
	t := now.UnixNano()
	b.mu.Lock()
	defer b.mu.Unlock()
	nb, nk := len(b.bans), len(b.kicks)
	b.bans = slices.DeleteFunc(b.bans, func(x Ban) bool { return !active(x.until(), t) })
	b.kicks = slices.DeleteFunc(b.kicks, func(k Kick) bool { return !active(k.Until, t) })
	if len(b.bans) != nb || len(b.kicks) != nk {
		b.publish()
	}
}

func (b *banList) counts() (bans, kicks int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.bans) + len(b.sharedBans), len(b.kicks) + len(b.sharedKicks)
}
