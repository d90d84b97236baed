package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"math"
	"net/netip"
	"sync"
	"time"
)

// The edge token is `e1.` + base64url(version | [len kid | kid] | flags | exp u32 | session u64 |
// root u64 when flagged | ip 0/4/16 | len channel | len user | mac16). Version 1 names no key and is tried with
// every key; version 2, minted with a key that has an id, carries that id and is checked with that key only. The
// channel and user travel in the token so that a refusal can say which check failed and so that a segment check
// needs nothing but the token; the root is the fingerprint of the viewer's own token, so that revoking that token
// revokes every child minted from it. The MAC is HMAC-SHA256 truncated to 128 bits.
const (
	edgePrefix     = "e1."
	edgeVersion    = 1
	edgeVersionKID = 2
	edgeFlagIPv4   = 1 << 0
	edgeFlagIPv6   = 1 << 1
	edgeFlagRoot   = 1 << 2
	edgeMACLen     = 16
	edgeMinRaw     = 1 + 1 + 4 + 8 + 1 + 1 + edgeMACLen
	edgeMaxRaw     = edgeMinRaw + 1 + maxKeyIDBytes + 8 + 16 + MaxChannelBytes + MaxUserIDBytes
	edgeMaxToken   = len(edgePrefix) + (edgeMaxRaw*8+5)/6
	sidDomain      = 0xff // first byte of session-id derivations; never a token version
)

// Strict refuses non-zero trailing bits; Verify also refuses the CR and LF that any base64 decoder skips, so
// each token has exactly one spelling (and one cache key).
var edgeB64 = base64.RawURLEncoding.Strict()

// EdgeToken is the content of an edge child token.
type EdgeToken struct {
	// Channel the token opens; exactly one.
	Channel string
	// Expires is unix seconds. Minted tokens never outlive the token they were derived from.
	Expires int64
	// IP binds the token to one client address; the zero Addr leaves it unbound.
	IP netip.Addr
	// SessionID is stable for one viewer of one channel, so sessions survive playlist refreshes.
	SessionID uint64
	// UserID is the parent token's user, at most 255 bytes.
	UserID string
	// Root is the fingerprint of the viewer's own token this one derives from, through any number of edge
	// tokens; 0 for a token minted by a tool. Bans and kicks of the root reach the token.
	Root Fingerprint
}

// EdgeClaims is a verified edge token, decoded into fixed storage so that verification allocates nothing.
type EdgeClaims struct {
	// Expires is unix seconds.
	Expires int64
	// SessionID is the viewer's session the token was minted for.
	SessionID uint64
	// IPBound tells that the token is bound to the client address it was verified with.
	IPBound bool
	// Root is the fingerprint of the viewer's own token; 0 when the token names none.
	Root   Fingerprint
	uidLen int
	uid    [MaxUserIDBytes]byte
	key    KeyRef
}

// UserID is the token's user; it points into c.
func (c *EdgeClaims) UserID() []byte { return c.uid[:c.uidLen] }

// Verified is c in the shape every kind shares, its fingerprint the root's: everything keyed on a viewer
// (bans, kicks, sessions) sees the viewer's own token. A user in fingerprint form (`~` and 16 hex digits) is
// the root of a child minted before children carried one, in place of a user.
func (c *EdgeClaims) Verified() Verified {
	v := Verified{Kind: KindEdge, Expires: c.Expires, Until: c.Expires * int64(time.Second), IPBound: c.IPBound,
		SessionID: c.SessionID, Key: c.key, Fingerprint: c.Root}
	user := string(c.UserID())
	if fp := ParseFingerprint(user); fp != 0 {
		if v.Fingerprint == 0 {
			v.Fingerprint = fp
		}
	} else {
		v.UserID = user
	}
	return v
}

// edgeScratch is a token's decoding buffer.
type edgeScratch struct {
	raw [edgeMaxRaw]byte
}

// edgeMAC is one key's HMAC state. Building one costs two SHA-256 blocks and two allocations, which the segment
// path cannot afford, so each key pools its own.
type edgeMAC struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

// edgeKey is one signing key.
type edgeKey struct {
	id   string
	ref  KeyRef
	macs sync.Pool
}

// verify reports whether mac is body's tag under k.
func (k *edgeKey) verify(body, mac []byte) bool {
	m := k.macs.Get().(*edgeMAC)
	defer k.macs.Put(m)
	m.h.Reset()
	m.h.Write(body)
	return hmac.Equal(m.h.Sum(m.sum[:0])[:edgeMACLen], mac)
}

// appendMAC appends body's tag under k to dst.
func (k *edgeKey) appendMAC(dst, body []byte) []byte {
	m := k.macs.Get().(*edgeMAC)
	defer k.macs.Put(m)
	m.h.Reset()
	m.h.Write(body)
	return append(dst, m.h.Sum(m.sum[:0])[:edgeMACLen]...)
}

// EdgeSigner mints edge tokens with its first key and verifies them with any of its keys.
type EdgeSigner struct {
	keys []*edgeKey
	byID map[string]*edgeKey
	bufs sync.Pool
}

var (
	errEdgeTooLong  = errors.New("edge token field too long")
	errEdgeNoExpiry = errors.New("edge token needs an expiry")
)

// NewEdgeSigner builds a signer for one key without an id; an empty key is replaced by a random one, so that
// tokens die with the process.
func NewEdgeSigner(key []byte) (*EdgeSigner, error) {
	if len(key) == 0 {
		return NewEdgeSignerKeys(nil)
	}
	return NewEdgeSignerKeys([]Key{{Secret: key, Ref: RefOf(key)}})
}

// NewEdgeSignerKeys builds a signer that mints with keys[0] and verifies with any key; without keys it uses one
// random key, so that tokens die with the process.
func NewEdgeSignerKeys(keys []Key) (*EdgeSigner, error) {
	if len(keys) == 0 {
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		keys = []Key{{Secret: k, Ref: RefOf(k)}}
	}
	s := &EdgeSigner{byID: map[string]*edgeKey{}}
	s.bufs.New = func() any { return new(edgeScratch) }
	for _, k := range keys {
		if len(k.ID) > maxKeyIDBytes {
			return nil, errEdgeTooLong
		}
		secret := append([]byte(nil), k.Secret...)
		ek := &edgeKey{id: k.ID, ref: k.Ref}
		if ek.ref == 0 {
			ek.ref = RefOf(secret)
		}
		ek.macs.New = func() any { return &edgeMAC{h: hmac.New(sha256.New, secret)} }
		s.keys = append(s.keys, ek)
		if k.ID != "" {
			s.byID[k.ID] = ek
		}
	}
	return s, nil
}

// HasKey reports whether ref names one of the signer's keys.
func (s *EdgeSigner) HasKey(ref KeyRef) bool {
	for _, k := range s.keys {
		if k.ref == ref {
			return true
		}
	}
	return false
}

// MintKey names the key new tokens are signed with.
func (s *EdgeSigner) MintKey() KeyRef { return s.keys[0].ref }

// Verify checks an edge token for a channel and client at now (unix seconds). It allocates nothing: this is
// every segment request of a viewer who arrived with a JWT.
func (s *EdgeSigner) Verify(tok, channel []byte, ip netip.Addr, now int64, out *EdgeClaims) error {
	return s.verify(tok, channel, ip, now, out, true)
}

// Authentic checks only that the edge token was minted with one of this signer's keys, whatever its channel,
// address and expiry, and returns its claims: for the operator naming a viewer by a token copied out of a
// playlist.
func (s *EdgeSigner) Authentic(tok []byte, out *EdgeClaims) bool {
	return s.verify(tok, nil, netip.Addr{}, 0, out, false) == nil
}

func (s *EdgeSigner) verify(tok, channel []byte, ip netip.Addr, now int64, out *EdgeClaims, scoped bool) error {
	if len(tok) <= len(edgePrefix) || len(tok) > edgeMaxToken || string(tok[:len(edgePrefix)]) != edgePrefix {
		return ErrMalformed
	}
	enc := tok[len(edgePrefix):]
	if edgeB64.DecodedLen(len(enc)) > edgeMaxRaw {
		return ErrMalformed
	}
	sc := s.bufs.Get().(*edgeScratch)
	defer s.bufs.Put(sc)
	n, err := edgeB64.Decode(sc.raw[:], enc)
	if err != nil || n < edgeMinRaw || edgeB64.EncodedLen(n) != len(enc) {
		// The length check refuses the CR and LF the decoder skipped: one token, one spelling.
		return ErrMalformed
	}
	raw := sc.raw[:n]
	p := 1
	var kid []byte
	switch raw[0] {
	case edgeVersion:
	case edgeVersionKID:
		kl := int(raw[1])
		if kl == 0 || kl > maxKeyIDBytes || edgeMinRaw+1+kl > n {
			return ErrMalformed
		}
		kid = raw[2 : 2+kl]
		p = 2 + kl
	default:
		return ErrMalformed
	}
	flags := raw[p]
	expAt := p + 1
	p += 1 + 4 + 8
	var ipLen int
	switch flags &^ edgeFlagRoot {
	case 0:
	case edgeFlagIPv4:
		ipLen = 4
	case edgeFlagIPv6:
		ipLen = 16
	default:
		return ErrMalformed
	}
	rootAt := 0
	if flags&edgeFlagRoot != 0 {
		rootAt = p
		p += 8
	}
	if p+ipLen+2 > n-edgeMACLen {
		return ErrMalformed
	}
	ipb := raw[p : p+ipLen]
	p += ipLen
	chLen := int(raw[p])
	p++
	if p+chLen+1 > n-edgeMACLen {
		return ErrMalformed
	}
	ch := raw[p : p+chLen]
	p += chLen
	uidLen := int(raw[p])
	p++
	if p+uidLen != n-edgeMACLen {
		return ErrMalformed
	}
	uid := raw[p : p+uidLen]
	body, mac := raw[:n-edgeMACLen], raw[n-edgeMACLen:]
	var key *edgeKey
	if kid != nil {
		// A token that names its key is checked with that key only.
		if k := s.byID[string(kid)]; k != nil && k.verify(body, mac) {
			key = k
		}
	} else {
		for _, k := range s.keys {
			if k.verify(body, mac) {
				key = k
				break
			}
		}
	}
	if key == nil {
		return ErrSignature
	}
	// Authentic from here on: the remaining checks may say precisely what is wrong.
	if scoped && string(ch) != string(channel) {
		return ErrWrongChannel
	}
	exp := int64(binary.BigEndian.Uint32(raw[expAt : expAt+4]))
	if scoped && now >= exp {
		return ErrExpired
	}
	if scoped && ipLen > 0 {
		ip = ip.Unmap()
		switch {
		case ipLen == 4 && ip.Is4():
			a := ip.As4()
			if string(a[:]) != string(ipb) {
				return ErrWrongIP
			}
		case ipLen == 16 && ip.Is6():
			a := ip.As16()
			if string(a[:]) != string(ipb) {
				return ErrWrongIP
			}
		default:
			return ErrWrongIP
		}
	}
	out.Expires = exp
	out.SessionID = binary.BigEndian.Uint64(raw[expAt+4 : expAt+12])
	out.IPBound = ipLen > 0
	out.Root = 0
	if rootAt > 0 {
		if out.Root = Fingerprint(binary.BigEndian.Uint64(raw[rootAt : rootAt+8])); out.Root == 0 {
			return ErrMalformed
		}
	}
	out.uidLen = copy(out.uid[:], uid)
	out.key = key.ref
	return nil
}

// AppendToken appends a minted edge token to dst.
func (s *EdgeSigner) AppendToken(dst []byte, t *EdgeToken) ([]byte, error) {
	return s.AppendChild(dst, []byte(t.Channel), t)
}

// AppendChild is AppendToken for a channel given as bytes (t.Channel is not read), so that the request path
// mints children without allocating.
func (s *EdgeSigner) AppendChild(dst, channel []byte, t *EdgeToken) ([]byte, error) {
	if len(channel) == 0 || len(channel) > MaxChannelBytes || len(t.UserID) > MaxUserIDBytes {
		return dst, errEdgeTooLong
	}
	exp := t.Expires
	if exp <= 0 {
		return dst, errEdgeNoExpiry
	}
	if exp > math.MaxUint32 {
		exp = math.MaxUint32
	}
	sc := s.bufs.Get().(*edgeScratch)
	defer s.bufs.Put(sc)
	raw := sc.raw[:0]
	var flags byte
	ip := t.IP.Unmap()
	switch {
	case ip.Is4():
		flags = edgeFlagIPv4
	case ip.Is6():
		flags = edgeFlagIPv6
	}
	if t.Root != 0 {
		flags |= edgeFlagRoot
	}
	k := s.keys[0]
	if k.id == "" {
		raw = append(raw, edgeVersion)
	} else {
		raw = append(raw, edgeVersionKID, byte(len(k.id)))
		raw = append(raw, k.id...)
	}
	raw = append(raw, flags)
	raw = binary.BigEndian.AppendUint32(raw, uint32(exp))
	raw = binary.BigEndian.AppendUint64(raw, t.SessionID)
	if t.Root != 0 {
		raw = binary.BigEndian.AppendUint64(raw, uint64(t.Root))
	}
	switch flags &^ edgeFlagRoot {
	case edgeFlagIPv4:
		a := ip.As4()
		raw = append(raw, a[:]...)
	case edgeFlagIPv6:
		a := ip.As16()
		raw = append(raw, a[:]...)
	}
	raw = append(raw, byte(len(channel)))
	raw = append(raw, channel...)
	raw = append(raw, byte(len(t.UserID)))
	raw = append(raw, t.UserID...)
	raw = k.appendMAC(raw, raw)
	dst = append(dst, edgePrefix...)
	return edgeB64.AppendEncode(dst, raw), nil
}

// SessionID derives a stable id for one credential (its fingerprint, the same for every spelling) on one
// channel from one address, so that every playlist refresh of a viewer mints child tokens with the same
// session, across edge restarts too, and a respelled token is no new session.
//
// It is derived with the minting key: sessions are keyed by viewer, not by this id, so a rotation that changes
// it costs nothing but a second id in the session's list.
func (s *EdgeSigner) SessionID(fp Fingerprint, channel []byte, ip netip.Addr) uint64 {
	k := s.keys[0]
	m := k.macs.Get().(*edgeMAC)
	defer k.macs.Put(m)
	m.h.Reset()
	var b [9]byte
	b[0] = sidDomain
	binary.BigEndian.PutUint64(b[1:], uint64(fp))
	m.h.Write(b[:])
	m.h.Write(channel)
	a := ip.Unmap().As16()
	m.h.Write(a[:])
	return binary.BigEndian.Uint64(m.h.Sum(m.sum[:0]))
}

// MintEdgeToken signs an edge token with secret, for `hlsedge token --kind edge` and load tests. The edge's own
// child tokens are minted by the authorizer with its configured key.
func MintEdgeToken(secret []byte, t EdgeToken) (string, error) {
	if len(secret) < MinSecretBytes {
		return "", errors.New("edge secret must be at least 32 bytes")
	}
	s, err := NewEdgeSigner(secret)
	if err != nil {
		return "", err
	}
	b, err := s.AppendToken(nil, &t)
	return string(b), err
}

// VerifyEdgeToken checks an edge token minted with secret for a channel and client at a time; for tools and
// tests. The edge verifies through its authorizer.
func VerifyEdgeToken(secret []byte, tok, channel string, ip netip.Addr, now time.Time) (EdgeToken, error) {
	s, err := NewEdgeSigner(secret)
	if err != nil {
		return EdgeToken{}, err
	}
	var c EdgeClaims
	if err := s.Verify([]byte(tok), []byte(channel), ip, now.Unix(), &c); err != nil {
		return EdgeToken{}, err
	}
	t := EdgeToken{Channel: channel, Expires: c.Expires, SessionID: c.SessionID, UserID: string(c.UserID()), Root: c.Root}
	if c.IPBound {
		t.IP = ip.Unmap()
	}
	return t, nil
}
