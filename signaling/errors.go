package signaling

import (
	"errors"
	"net/http"

	"github.com/hlsedge/hlsedge/authz/token"
)

// Sentinel errors. Their text is the one-line reason a refused client gets, so it never holds a token, a claim
// value or a secret.
var (
	ErrNoRoom            = errors.New("no conference named: send the room query parameter or X-Room-Name")
	ErrBadRoom           = errors.New("malformed conference name")
	ErrOrigin            = errors.New("origin not allowed")
	ErrNoIdentity        = errors.New("token names no user")
	ErrWrongRoom         = errors.New("token is for another conference")
	ErrWrongConference   = errors.New("token is for another run of this conference")
	ErrNotRunning        = errors.New("conference is not running")
	ErrTooManyUser       = errors.New("too many connections for this user")
	ErrTooManyConference = errors.New("too many connections for this conference")
	ErrTooManyConns      = errors.New("too many connections")
	ErrClosed            = errors.New("signaling server is shutting down")
	ErrHandshake         = errors.New("bad websocket handshake")
	ErrUnavailable       = errors.New("conference state unavailable, try again later")
)

// Token refusals are the token package's, which auth shares; they are named here too, so that this list holds
// every reason a client can be refused with.
var (
	ErrNoToken     = token.ErrNoToken
	ErrMalformed   = token.ErrMalformed
	ErrSignature   = token.ErrSignature
	ErrAlgorithm   = token.ErrAlgorithm
	ErrNoKey       = token.ErrNoKey
	ErrExpired     = token.ErrExpired
	ErrNotYetValid = token.ErrNotYetValid
	ErrNoExpiry    = token.ErrNoExpiry
	ErrIssuer      = token.ErrIssuer
	ErrAudience    = token.ErrAudience
	ErrClaim       = token.ErrClaim
)

// statusOf maps an upgrade refusal onto its HTTP status: 401 when no valid credential was presented (the client
// should fetch a token), 403 when the credential is authentic but does not open this conference or a limit is hit.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrNoRoom), errors.Is(err, ErrBadRoom), errors.Is(err, ErrHandshake),
		errors.Is(err, ErrSocketIOTransport), errors.Is(err, ErrEngineIOVersion), errors.Is(err, ErrPolling),
		errors.Is(err, ErrUnknownSession), errors.Is(err, ErrPollingOff):
		return http.StatusBadRequest
	case errors.Is(err, ErrClosed), errors.Is(err, ErrUnavailable), errors.Is(err, ErrTooManyPolling):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrOrigin), errors.Is(err, ErrWrongRoom), errors.Is(err, ErrWrongConference),
		errors.Is(err, ErrNotRunning), errors.Is(err, ErrTooManyUser), errors.Is(err, ErrTooManyConference),
		errors.Is(err, ErrTooManyConns):
		return http.StatusForbidden
	}
	return http.StatusUnauthorized
}
