package authz

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
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

	prefix netip.Prefix
	fp     uint64
	until  int64 // unix nanos; 0: never
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

type kick struct {
	sid, chKey uint64 // either may be 0
	until      int64
}

// banState is the authoritative list behind a read-only snapshot that requests read without locking. Every
// change publishes a new snapshot with the next generation number; cached decisions remember the generation
// they were checked against and are re-checked when it moved, so a ban or kick applies to the very next request
// without scanning the decision cache.
type banState struct {
	mu    sync.Mutex
	max   int
	seq   uint64
	bans  []*Ban
	kicks []kick
	seed  maphash.Seed
	snap  atomic.Pointer[banSet]
}

// banSet is one immutable generation of bans and kicks.
type banSet struct {
	gen      uint64
	empty    bool
	addrs    map[netip.Addr]int64
	prefixes []*Ban
	users    map[string]int64
	tokens   map[uint64]int64
	sids     map[uint64]int64
	chToks   map[uint64]int64
	seed     maphash.Seed
}

func newBanState(max int) *banState {
	b := &banState{max: max, seed: maphash.MakeSeed()}
	b.snap.Store(&banSet{empty: true, seed: b.seed})
	return b
}

func (b *banState) load() *banSet { return b.snap.Load() }

// publish builds the next snapshot; the caller holds mu.
func (b *banState) publish() {
	s := &banSet{gen: b.snap.Load().gen + 1, seed: b.seed, empty: len(b.bans) == 0 && len(b.kicks) == 0}
	put := func(m *map[uint64]int64, k uint64, until int64) {
		if *m == nil {
			*m = map[uint64]int64{}
		}
		if old, ok := (*m)[k]; !ok || (old != 0 && (until == 0 || until > old)) {
			(*m)[k] = until
		}
	}
	for _, x := range b.bans {
		switch {
		case x.IP != "" && x.prefix.IsSingleIP():
			if s.addrs == nil {
				s.addrs = map[netip.Addr]int64{}
			}
			s.addrs[x.prefix.Addr()] = x.until
		case x.IP != "":
			s.prefixes = append(s.prefixes, x)
		case x.User != "":
			if s.users == nil {
				s.users = map[string]int64{}
			}
			s.users[x.User] = x.until
		default:
			put(&s.tokens, x.fp, x.until)
		}
	}
	for _, k := range b.kicks {
		if k.sid != 0 {
			put(&s.sids, k.sid, k.until)
		}
		if k.chKey != 0 {
			put(&s.chToks, k.chKey, k.until)
		}
	}
	b.snap.Store(s)
}

func (b *banState) add(r BanRequest, now time.Time) (Ban, error) {
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
	x := &Ban{Reason: r.Reason, Created: now.UTC()}
	if r.TTL > 0 {
		x.Expires = now.Add(r.TTL).UTC()
		x.until = now.Add(r.TTL).UnixNano()
	}
	switch {
	case r.IP != "":
		p, err := parseIPOrPrefix(r.IP)
		if err != nil {
			return Ban{}, errBadBanIP
		}
		x.prefix, x.IP = p, p.String()
		if p.IsSingleIP() {
			x.IP = p.Addr().String()
		}
	case r.User != "":
		if len(r.User) > maxUserIDBytes {
			return Ban{}, ErrUserIDTooLong
		}
		x.User = r.User
	default:
		x.fp = parseFingerprint(r.Token)
		if x.fp == 0 {
			x.fp = fingerprint([]byte(r.Token))
		}
		x.Token = fingerprintString(x.fp)
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
	return *x, nil
}

func (b *banState) remove(id string) bool {
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

func (b *banState) list(now time.Time) []Ban {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Ban, 0, len(b.bans))
	for _, x := range b.bans {
		if x.until == 0 || x.until > now.UnixNano() {
			out = append(out, *x)
		}
	}
	return out
}

// kick refuses the session ids, and the token on the channel, until the given instant. Kicks past the bound
// replace the oldest ones rather than fail: a kick is the operator's last word on a viewer who is watching now.
func (b *banState) kick(sids []uint64, fp uint64, ch string, until int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	add := func(k kick) {
		if len(b.bans)+len(b.kicks) >= b.max && len(b.kicks) > 0 {
			b.kicks = slices.Delete(b.kicks, 0, 1)
		}
		b.kicks = append(b.kicks, k)
	}
	for _, sid := range sids {
		if sid != 0 {
			add(kick{sid: sid, until: until})
		}
	}
	if fp != 0 {
		add(kick{chKey: chTokKey(b.seed, fp, []byte(ch)), until: until})
	}
	b.publish()
}

// prune drops what has run out, so that lists stay bounded by what is in force.
func (b *banState) prune(now time.Time) {
	t := now.UnixNano()
	live := func(until int64) bool { return until == 0 || until > t }
	b.mu.Lock()
	defer b.mu.Unlock()
	nb := len(b.bans)
	nk := len(b.kicks)
	b.bans = slices.DeleteFunc(b.bans, func(x *Ban) bool { return !live(x.until) })
	b.kicks = slices.DeleteFunc(b.kicks, func(k kick) bool { return !live(k.until) })
	if len(b.bans) != nb || len(b.kicks) != nk {
		b.publish()
	}
}

func (b *banState) counts() (bans, kicks int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.bans), len(b.kicks)
}

func active(until, now int64) bool { return until == 0 || now < until }

// ipBanned is checked on every request while IP bans exist.
func (s *banSet) ipBanned(ip netip.Addr, now int64) bool {
	if len(s.addrs) == 0 && len(s.prefixes) == 0 {
		return false
	}
	ip = ip.Unmap().WithZone("")
	if u, ok := s.addrs[ip]; ok && active(u, now) {
		return true
	}
	for _, p := range s.prefixes {
		if p.prefix.Contains(ip) && active(p.until, now) {
			return true
		}
	}
	return false
}

// Block codes kept in cache entries.
const (
	blockNone uint32 = iota
	blockBanned
	blockKicked
)

var blockErrs = [...]error{nil, ErrBanned, ErrKicked}

// check tells whether an allowed decision is now refused by a ban or kick.
func (s *banSet) check(d *Decision, ch []byte, ip netip.Addr, now int64) uint32 {
	if s.empty {
		return blockNone
	}
	if s.ipBanned(ip, now) {
		return blockBanned
	}
	if d.fp != 0 {
		if u, ok := s.tokens[d.fp]; ok && active(u, now) {
			return blockBanned
		}
	}
	if d.UserID != "" {
		if u, ok := s.users[d.UserID]; ok && active(u, now) {
			return blockBanned
		}
	}
	if u, ok := s.sids[d.SessionID]; ok && d.SessionID != 0 && active(u, now) {
		return blockKicked
	}
	if d.fp != 0 && len(s.chToks) > 0 {
		if u, ok := s.chToks[chTokKey(s.seed, d.fp, ch)]; ok && active(u, now) {
			return blockKicked
		}
	}
	return blockNone
}

func chTokKey(seed maphash.Seed, fp uint64, ch []byte) uint64 {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], fp)
	binary.LittleEndian.PutUint64(b[8:], maphash.Bytes(seed, ch))
	return maphash.Bytes(seed, b[:]) | 1
}

// fingerprint names a token without revealing it: the first 8 bytes of its SHA-256. It is stable across
// restarts and nodes, so a ban or a session limit follows the token, and it is never 0.
func fingerprint(tok []byte) uint64 {
	sum := sha256.Sum256(tok)
	return binary.BigEndian.Uint64(sum[:8]) | 1
}

// fingerprintString is how sessions and bans show a token: `~` and 16 hex digits.
func fingerprintString(fp uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], fp)
	return "~" + hex.EncodeToString(b[:])
}

// parseFingerprint reads fingerprintString's form; 0 when s is not one.
func parseFingerprint(s string) uint64 {
	if len(s) != 17 || s[0] != '~' {
		return 0
	}
	var b [8]byte
	if _, err := hex.Decode(b[:], []byte(s[1:])); err != nil {
		return 0
	}
	return binary.BigEndian.Uint64(b[:])
}

// Ban refuses an address or CIDR, a user or a token, on every channel, from the next request on.
func (a *Authorizer) Ban(r BanRequest, now time.Time) (Ban, error) {
	if a.bans == nil {
		return Ban{}, fmt.Errorf("authorization is disabled: %w", ErrBanRequest)
	}
	b, err := a.bans.add(r, now)
	if err == nil {
		a.log.Info("authz: ban added", "id", b.ID, "ip", b.IP, "user", b.User, "token", b.Token, "expires", b.Expires)
		if a.sessions != nil {
			a.sessions.closeWhere(func(s *session) bool {
				return (b.IP != "" && b.prefix.Contains(s.ip)) || (b.User != "" && s.user == b.User) || (b.fp != 0 && s.fp == b.fp)
			}, "banned", now)
		}
	}
	return b, err
}

// Unban lifts a ban by id; it reports whether there was one.
func (a *Authorizer) Unban(id string) bool {
	if a.bans == nil {
		return false
	}
	ok := a.bans.remove(id)
	if ok {
		a.log.Info("authz: ban lifted", "id", id)
	}
	return ok
}

// Bans lists the bans in force.
func (a *Authorizer) Bans(now time.Time) []Ban {
	if a.bans == nil {
		return nil
	}
	return a.bans.list(now)
}
