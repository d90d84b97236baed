package authz

import (
	"errors"
	"net/http"
)

// Sentinel errors. Their text is the one-line reason given to viewers and logs, so it never holds a token, a
// claim value or a secret.
var (
	ErrNoToken         = errors.New("no token")
	ErrTokenTooLong    = errors.New("token too long")
	ErrMalformed       = errors.New("malformed token")
	ErrKindRefused     = errors.New("token kind not accepted for this channel")
	ErrNoGroup         = errors.New("channel not covered by any auth group")
	ErrNoChannel       = errors.New("no channel in path")
	ErrSignature       = errors.New("bad signature")
	ErrAlgorithm       = errors.New("algorithm not allowed")
	ErrUnknownKey      = errors.New("unknown key id")
	ErrNoKey           = errors.New("no verification key for this algorithm")
	ErrWrongChannel    = errors.New("token not valid for this channel")
	ErrWrongIP         = errors.New("token bound to another client ip")
	ErrNotYetValid     = errors.New("token not valid yet")
	ErrExpired         = errors.New("token expired")
	ErrIssuer          = errors.New("wrong issuer")
	ErrAudience        = errors.New("wrong audience")
	ErrNoExpiry        = errors.New("token has no expiry")
	ErrNoStreams       = errors.New("token grants no channels")
	ErrNoIP            = errors.New("token not bound to a client ip")
	ErrClaim           = errors.New("malformed claim")
	ErrUserIDTooLong   = errors.New("user id too long")
	ErrNoEdgeSecret    = errors.New("edge token secret not configured")
	ErrKeyAlgMismatch  = errors.New("key type does not match algorithm")
	ErrUnsupportedAlgo = errors.New("unsupported algorithm")

	ErrTokenDenied   = errors.New("token refused by rule")
	ErrIPDenied      = errors.New("client address refused by rule")
	ErrUADenied      = errors.New("user agent refused by rule")
	ErrDomain        = errors.New("referer not allowed for this channel")
	ErrNoReferer     = errors.New("referer required for this channel")
	ErrBanned        = errors.New("banned")
	ErrKicked        = errors.New("session closed by the operator")
	ErrSessionLimit  = errors.New("too many sessions for this user")
	ErrSessionsFull  = errors.New("session table full")
	ErrBackendDown   = errors.New("auth backend unavailable")
	ErrBackendDenied = errors.New("refused by auth backend")
)

// backendDenial is a middleware's refusal with its own status, which Flussonic passes on to the viewer.
type backendDenial struct{ status int }

func (e *backendDenial) Error() string { return ErrBackendDenied.Error() }
func (e *backendDenial) Unwrap() error { return ErrBackendDenied }

// statusOf maps a verification error onto the HTTP status the viewer gets: 401 when nothing was presented, 410
// when an authentic token has run out (as nginx secure_link does), 403 for everything else.
func statusOf(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrBackendDenied):
		var bd *backendDenial
		if errors.As(err, &bd) && bd.status >= 400 && bd.status < 500 {
			return bd.status
		}
		return http.StatusForbidden
	case errors.Is(err, ErrNoToken):
		return http.StatusUnauthorized
	case errors.Is(err, ErrExpired):
		return http.StatusGone
	}
	return http.StatusForbidden
}

// TokenKind is the family a token belongs to, recognised by its shape.
type TokenKind uint8

// Token kinds.
const (
	KindNone TokenKind = iota
	KindJWT
	KindSecureToken
	KindEdge
)

func (k TokenKind) String() string {
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

func parseKind(s string) TokenKind {
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

// kindOf recognises a token by shape alone, so that each request runs exactly one verifier: the edge token's
// prefix, a JWT's two dots, otherwise securetoken (whose strict parser refuses anything else).
func kindOf(tok []byte) TokenKind {
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
