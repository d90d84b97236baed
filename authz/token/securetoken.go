package token

import (
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // the securetoken protocol is defined with SHA-1; compatibility is the point.
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/netip"
	"strconv"
	"time"
)

// Securetoken limits. A PHP salt is 32 hex digits and a Ruby one up to 8 octal digits; 64 leaves room.
const (
	stHashLen    = 40
	stMaxSalt    = 64
	stTimeDigits = 10 // unix seconds from 2001-09-09 (1e9) to 2286-11-20 (1e10-1)
	stMaxTokenSz = stHashLen + 1 + stMaxSalt + 1 + stTimeDigits + 1 + stTimeDigits
	stMinTokenSz = stHashLen + 1 + 1 + 1 + stTimeDigits + 1 + stTimeDigits
)

// secureToken is a parsed `HASH-SALT-END-START`. The digit strings are kept as sent because the hash covers
// them as text.
type secureToken struct {
	hash       [sha1.Size]byte
	salt       []byte
	end, start []byte
	endN       int64
	startN     int64
}

// parseSecureToken is strict: exactly four fields, 40 hex digits, an alphanumeric salt, and start and end of
// exactly ten decimal digits (no sign, no leading zero) with start before end. Flussonic's hash runs
// stream, ip, start and end together without separators, so a digit could otherwise move across a boundary
// without changing the hash: from the end of the address into start (a link for x.y.z.1 used from x.y.z.11)
// or between start and end (a one-hour window rewritten into one of centuries). With both times of a fixed
// width, where the address ends and where start and end meet is fixed by the length of the whole.
func parseSecureToken(tok []byte) (st secureToken, err error) {
	if len(tok) > stMaxTokenSz || len(tok) < stMinTokenSz || tok[stHashLen] != '-' {
		return st, ErrMalformed
	}
	if _, err := hex.Decode(st.hash[:], tok[:stHashLen]); err != nil {
		return st, ErrMalformed
	}
	var fields [3][]byte
	rest := tok[stHashLen+1:]
	for i := range fields {
		j := 0
		for j < len(rest) && rest[j] != '-' {
			j++
		}
		if i < 2 && j == len(rest) || i == 2 && j != len(rest) {
			return st, ErrMalformed
		}
		fields[i] = rest[:j]
		if j < len(rest) {
			rest = rest[j+1:]
		}
	}
	st.salt, st.end, st.start = fields[0], fields[1], fields[2]
	if len(st.salt) == 0 || len(st.salt) > stMaxSalt {
		return st, ErrMalformed
	}
	for _, c := range st.salt {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return st, ErrMalformed
		}
	}
	var ok bool
	if st.endN, ok = parseUnix(st.end); !ok {
		return st, ErrMalformed
	}
	if st.startN, ok = parseUnix(st.start); !ok {
		return st, ErrMalformed
	}
	if st.startN >= st.endN {
		return st, ErrMalformed
	}
	return st, nil
}

// parseUnix reads a time of exactly stTimeDigits decimal digits, the first not 0.
func parseUnix(b []byte) (int64, bool) {
	if len(b) != stTimeDigits || b[0] == '0' {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// fingerprint names the token in its one canonical spelling: the hash in lower case, the other fields as
// parsed (they have only one spelling).
func (st *secureToken) fingerprint() Fingerprint {
	var buf [stMaxTokenSz]byte
	b := hex.AppendEncode(buf[:0], st.hash[:])
	b = append(b, '-')
	b = append(b, st.salt...)
	b = append(b, '-')
	b = append(b, st.end...)
	b = append(b, '-')
	b = append(b, st.start...)
	sum := sha256.Sum256(b)
	return fingerprint(sum[:])
}

// SecureTokenVerifier recomputes Flussonic's hash with the stream name from the URL and the client's address.
// With several keys (a rotation) the token is accepted when the hash of any of them matches.
type SecureTokenVerifier struct {
	keys        []Key
	noCheckIP   bool
	desync      int64 // seconds
	maxLifetime int64 // seconds
}

// NewSecureTokenVerifier reads the keys; cfg has had Validate.
func NewSecureTokenVerifier(cfg *SecureTokenConfig) (*SecureTokenVerifier, error) {
	keys, err := cfg.Keys("securetoken")
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, ErrNoKey
	}
	return &SecureTokenVerifier{keys: keys, noCheckIP: cfg.NoCheckIP, desync: int64(cfg.Desync / time.Second),
		maxLifetime: int64(cfg.maxLifetime() / time.Second)}, nil
}

// HasKey reports whether ref names one of the verifier's keys.
func (v *SecureTokenVerifier) HasKey(ref KeyRef) bool {
	for i := range v.keys {
		if v.keys[i].Ref == ref {
			return true
		}
	}
	return false
}

// Verify checks one token for one stream and client at now. The hash is checked first, so only an authentic
// token learns that its window is wrong.
func (v *SecureTokenVerifier) Verify(tok []byte, channel []byte, ip netip.Addr, now time.Time, out *Verified) error {
	st, err := parseSecureToken(tok)
	if err != nil {
		return err
	}
	if !v.noCheckIP && !ip.IsValid() {
		// An unknown address would hash as "", which is what a no_check_ip website sends.
		return ErrWrongIP
	}
	var buf [512]byte
	b := append(buf[:0], channel...)
	if !v.noCheckIP {
		b = ip.Unmap().WithZone("").AppendTo(b)
	}
	b = append(b, st.start...)
	b = append(b, st.end...)
	prefix := len(b)
	var key KeyRef
	for i := range v.keys {
		k := &v.keys[i]
		b = append(append(b[:prefix], k.Secret...), st.salt...)
		sum := sha1.Sum(b) //nolint:gosec // protocol compatibility
		if subtle.ConstantTimeCompare(sum[:], st.hash[:]) == 1 {
			key = k.Ref
			break
		}
	}
	if key == 0 {
		// A wrong IP, stream, salt or key all look alike here: the hash is all there is.
		return ErrSignature
	}
	if st.endN-st.startN > v.maxLifetime {
		return ErrLifetime
	}
	t := now.Unix()
	if t < st.startN-v.desync {
		return ErrNotYetValid
	}
	if t >= st.endN+v.desync {
		return ErrExpired
	}
	*out = Verified{
		Kind:        KindSecureToken,
		Fingerprint: st.fingerprint(),
		Expires:     st.endN,
		Until:       (st.endN + v.desync) * int64(time.Second),
		IPBound:     !v.noCheckIP,
		Key:         key,
	}
	return nil
}

// MintSecureToken builds a Flussonic securetoken exactly as the reference PHP does:
// sha1(stream.ip.start.end.key.salt) . "-" . salt . "-" . end . "-" . start. Pass ip "" for no_check_ip.
func MintSecureToken(secret, stream, ip string, start, end int64, salt string) string {
	s, e := strconv.FormatInt(start, 10), strconv.FormatInt(end, 10)
	sum := sha1.Sum([]byte(stream + ip + s + e + secret + salt)) //nolint:gosec // protocol compatibility
	return hex.EncodeToString(sum[:]) + "-" + salt + "-" + e + "-" + s
}

// NewSalt returns 16 random bytes in hex, as the PHP example's bin2hex(openssl_random_pseudo_bytes(16)).
func NewSalt() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
