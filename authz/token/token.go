package token

import (
	"crypto/sha256"
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
	// Fingerprint names the credential without revealing it: the token's own for a JWT or securetoken, the
	// parent's for an edge token minted from a token without a user. 0 when unknown.
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

// Fingerprint names a token without revealing it: the first 8 bytes of its SHA-256. It is stable across
// restarts and nodes, so a ban or a session limit follows the token, and it is never 0.
type Fingerprint uint64

// FingerprintOf computes tok's fingerprint.
func FingerprintOf(tok []byte) Fingerprint {
	sum := sha256.Sum256(tok)
	return Fingerprint(binary.BigEndian.Uint64(sum[:8]) | 1)
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
