package token

import (
	"errors"
	"net/http"
)

// Verification errors. Their text is the one-line reason given to viewers and logs, so it never holds a token,
// a claim value or a secret.
var (
	ErrNoToken         = errors.New("no token")
	ErrMalformed       = errors.New("malformed token")
	ErrSignature       = errors.New("bad signature")
	ErrAlgorithm       = errors.New("algorithm not allowed")
	ErrUnknownKey      = errors.New("unknown key id")
	ErrNoKey           = errors.New("no verification key for this algorithm")
	ErrKeyAlgMismatch  = errors.New("key type does not match algorithm")
	ErrUnsupportedAlgo = errors.New("unsupported algorithm")
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
	ErrIssuedInFuture  = errors.New("token issued in the future")
	ErrLifetime        = errors.New("token window longer than max_lifetime")
)

// Status maps a verification error onto the HTTP status a viewer gets: 401 when nothing was presented, 410 when
// an authentic token has run out (as nginx secure_link does), 403 for everything else.
func Status(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrNoToken):
		return http.StatusUnauthorized
	case errors.Is(err, ErrExpired):
		return http.StatusGone
	}
	return http.StatusForbidden
}
