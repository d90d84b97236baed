package authz

import (
	"errors"
	"net/http"

	"github.com/hlsedge/hlsedge/authz/token"
)

// Policy errors; the token's own refusals are the token package's. Their text is the one-line reason given to
// viewers and logs, so it never holds a token, a claim value or a secret.
var (
	ErrTokenTooLong  = errors.New("token too long")
	ErrKindRefused   = errors.New("token kind not accepted for this channel")
	ErrNoGroup       = errors.New("channel not covered by any auth group")
	ErrNoChannel     = errors.New("no channel in path")
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

// statusOf maps a refusal onto the HTTP status the viewer gets: a middleware's own 4xx, otherwise the token
// package's mapping (401 when nothing was presented, 410 for an authentic token that ran out, 403 otherwise).
func statusOf(err error) int {
	var bd *backendDenial
	if errors.As(err, &bd) {
		if bd.status >= 400 && bd.status < 500 {
			return bd.status
		}
		return http.StatusForbidden
	}
	return token.Status(err)
}

// refuse is the group's refusal for err: an expired token gets the group's expired_status.
func (g *group) refuse(err error, kind token.Kind) Decision {
	d := deny(err, kind, g.name)
	if d.Status == http.StatusGone && g.expiredStatus != 0 {
		d.Status = g.expiredStatus
	}
	return d
}
