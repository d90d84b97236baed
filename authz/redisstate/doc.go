// Package redisstate is the viewer state of an edge in a fleet: bans, kicks and per-user session limits shared
// with the other edges through Redis, sessions kept and served from this process's memory.
//
// The request path never waits for Redis once a session is open: bans and kicks are applied from the
// authorizer's in-memory snapshot, which the fleet's subscription refreshes, and a session is refreshed in
// Redis at most every few seconds by a background worker. Only the first request of a session with a limit
// makes one round trip, the atomic admission script. While Redis is unreachable the bans and kicks already known
// stay in force, new ones apply on this node and are shared when it returns, and session limits are counted on
// this node alone (hlsedge_auth_fleet_limits_local says so); when it returns, everything re-syncs.
//
// What it keeps in Redis, through internal/fleet (never a raw token: tokens appear as their fingerprints):
//
//	revocation "ban:ID"      a ban (JSON authz.Ban), with its expiry
//	revocation "kick:ID"     the kicks that keep session ID closed, and the session as it was (JSON)
//	revocation "epoch"       a random value written when the set is first filled, so that a member can tell a
//	                         Redis that lost its data (restarted empty) from one where bans were lifted
//	{PREFIX:authz}:ctl       channel of requests between members: close a session held elsewhere, evict the
//	                         sessions a unique admission replaced
//	user sessions            per-user sorted sets of session fingerprints (fleet.AdmitSession)
package redisstate
