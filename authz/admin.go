package authz

import (
	"fmt"
	"time"

	"github.com/hlsedge/hlsedge/authz/token"
)

// The operator's side of the viewer state, for the admin API. With authorization disabled there is none.

// Ban refuses an address or CIDR, a user or a token, on every channel, from the next request on.
func (a *Authorizer) Ban(r BanRequest, now time.Time) (Ban, error) {
	if a.state == nil {
		return Ban{}, fmt.Errorf("authorization is disabled: %w", ErrBanRequest)
	}
	if r.Token != "" && token.KindOf([]byte(r.Token)) == token.KindEdge {
		// A child token copied out of a playlist names the viewer's own token, its root: banning the child alone
		// would leave the root, and every child minted from it, playing.
		var c token.EdgeClaims
		if a.edge.Authentic([]byte(r.Token), &c) {
			if v := c.Verified(); v.Fingerprint != 0 {
				r.Token = v.Fingerprint.String()
			}
		}
	}
	return a.state.Ban(r, now)
}

// Unban lifts a ban by id; it reports whether there was one.
func (a *Authorizer) Unban(id string) bool { return a.state != nil && a.state.Unban(id) }

// Bans lists the bans in force.
func (a *Authorizer) Bans(now time.Time) []Ban {
	if a.state == nil {
		return nil
	}
	return a.state.Bans(now)
}

// Kick closes a session; its token is refused on that channel, and its session ids everywhere, until the token
// expires (or for edge.max_ttl when it has no expiry), starting with the very next request.
func (a *Authorizer) Kick(id string, now time.Time) (SessionInfo, error) {
	if a.state == nil {
		return SessionInfo{}, ErrSessionsOff
	}
	return a.state.Kick(id, now)
}

// Sessions lists the open sessions that match f, oldest first.
func (a *Authorizer) Sessions(f SessionFilter) []SessionInfo {
	if a.state == nil {
		return []SessionInfo{}
	}
	return a.state.Sessions(f)
}

// Viewers counts the active sessions per channel.
func (a *Authorizer) Viewers(now time.Time) map[string]int {
	if a.state == nil {
		return map[string]int{}
	}
	return a.state.Viewers(now)
}

// Sweep closes the sessions idle at now and drops the bans and kicks that ran out. The viewer state's janitor
// does it; tests built WithoutJanitor call it themselves.
func (a *Authorizer) Sweep(now time.Time) {
	if a.state != nil {
		a.state.Sweep(now)
	}
}
