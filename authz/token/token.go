package token

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
)

// Kind is the family a token belongs to, recognised by its shape.
type Kind uint8

// Token kinds.
const (
	KindNone Kind = iota
	KindJWT
	KindSecureToken
	KindEdge
)

func (k Kind) String() string {
	switch k {
	case KindJWT:
		return "jwt"
	case KindSecureToken:
		return "securetoken"
	case KindEdge:
		return "edge"
	}
	return "none"
}

// ParseKind reads a kind's name as String writes it; KindNone for anything else.
func ParseKind(s string) Kind {
	switch s {
	case "jwt":
		return KindJWT
	case "securetoken":
		return KindSecureToken
	case "edge":
		return KindEdge
	}
	return KindNone
}

// KindOf recognises a token by shape alone, so that each request runs exactly one verifier: the edge token's
// prefix, a JWT's two dots, otherwise securetoken (whose strict parser refuses anything else).
func KindOf(tok []byte) Kind {
	if len(tok) >= len(edgePrefix) && string(tok[:len(edgePrefix)]) == edgePrefix {
		return KindEdge
	}
	dots := 0
	for _, c := range tok {
		if c == '.' {
			dots++
		}
	}
	if dots == 2 {
		return KindJWT
	}
	return KindSecureToken
}

// Verified is what an authentic token says about its bearer, in the same shape whatever its kind, so that
// everything keyed on a viewer (decision cache, sessions, bans) reads one value.
type Verified struct {
	Kind Kind
	// UserID is the user the token names (the JWT user claim, an edge token's user); empty when none.
	UserID string
	// Fingerprint names the credential without revealing it, the same for every spelling: the token's own
	// for a JWT or securetoken, for an edge token its root (the viewer's own token it was minted from). 0 when
	// unknown.
	Fingerprint Fingerprint
	// Expires is the expiry the token states, in unix seconds; 0 when it has none.
	Expires int64
	// Until is the instant, in unix nanos, after which the verification must be made again (the expiry plus
	// leeway or desync); 0 when the token sets none.
	Until int64
	// MaxSessions is the token's concurrent-session limit; 0 when it sets none.
	MaxSessions int
	// IPBound tells that the token only verifies from the client address it was checked with.
	IPBound bool
	// SessionID is an edge token's session; 0 for the other kinds, whose session the caller derives.
	SessionID uint64
	// Key names the key that verified the token, so that a decision cached under it can be dropped once a
	// reload removes that key; 0 when unknown.
	Key KeyRef
}

// Fingerprint names a credential without revealing it: the first 8 bytes of the SHA-256 of its canonical form
// (see FingerprintOf). It is stable across restarts and nodes and the same for every spelling of one credential,
// so that a ban, a kick or a session limit follows the credential rather than its text; it is never 0.
type Fingerprint uint64

// jwtDomain separates a JWT's fingerprint, taken over its signing input, from that of a token whose text
// happens to equal that input.
const jwtDomain = "jwt\x00"

// FingerprintOf computes the fingerprint of tok's credential, so that every spelling a verifier accepts names
// the same one:
//   - a JWT (a JSON header, two dots): its signing input, header.payload, as it was signed. The signature is
//     left out: its last base64url character has unused bits, the decoder skips CR and LF, an ECDSA signature
//     (r, s) also verifies as (r, n-s), and PSS signs the same claims differently each time;
//   - a securetoken: its fields with the hash in lower case (hex is accepted in either case; the other fields
//     have one spelling, which the parser enforces);
//   - anything else (an edge token, whose base64url the verifier takes in one spelling only, or a middleware's
//     token, whose equivalences only the middleware knows): its text.
//
// It does not verify: a forged token gets the fingerprint of the credential it imitates, and is refused anyway.
func FingerprintOf(tok []byte) Fingerprint {
	switch KindOf(tok) {
	case KindJWT:
		if in, ok := jwtSigningInput(tok); ok {
			h := sha256.New()
			h.Write([]byte(jwtDomain))
			h.Write(in)
			var sum [sha256.Size]byte
			return fingerprint(h.Sum(sum[:0]))
		}
	case KindSecureToken:
		if st, err := parseSecureToken(tok); err == nil {
			return st.fingerprint()
		}
	}
	sum := sha256.Sum256(tok)
	return fingerprint(sum[:])
}

func fingerprint(sum []byte) Fingerprint { return Fingerprint(binary.BigEndian.Uint64(sum[:8]) | 1) }

// jwtSigningInput returns header.payload of a token shaped like a JWT whose header decodes to a JSON object;
// false for anything else, which keeps a middleware's dotted token of another shape on its own text.
func jwtSigningInput(tok []byte) ([]byte, bool) {
	first := bytes.IndexByte(tok, '.')
	last := bytes.LastIndexByte(tok, '.')
	if first <= 0 || last == first {
		return nil, false
	}
	var small [512]byte
	hdr := tok[:first]
	buf := small[:]
	if n := base64.RawURLEncoding.DecodedLen(len(hdr)); n > len(buf) {
		buf = make([]byte, n) // a header with a certificate chain (x5c)
	}
	n, err := base64.RawURLEncoding.Decode(buf, hdr)
	if err != nil {
		return nil, false
	}
	j := bytes.TrimLeft(buf[:n], " \t\r\n")
	if len(j) == 0 || j[0] != '{' {
		return nil, false
	}
	return tok[:last], true
}

// String is how sessions and bans show a token: `~` and 16 hex digits.
func (f Fingerprint) String() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(f))
	return "~" + hex.EncodeToString(b[:])
}

// ParseFingerprint reads String's form; 0 when s is not one.
func ParseFingerprint(s string) Fingerprint {
	if len(s) != 17 || s[0] != '~' {
		return 0
	}
	var b [8]byte
	if _, err := hex.Decode(b[:], []byte(s[1:])); err != nil {
		return 0
	}
	return Fingerprint(binary.BigEndian.Uint64(b[:]))
}
