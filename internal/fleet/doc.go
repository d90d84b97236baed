// Package fleet is an edge's membership of a fleet on Redis: the shared bans and kicks, per-user limits and
// conference state that let several edges behind one balancer act as one.
//
// Every call fails fast with ErrUnavailable while Redis is unreachable, so that callers fall back to what they
// know locally instead of stalling a request for a timeout. Every key a member writes carries a hash tag
// (`{hlsedge:conf:ROOM}:...`), so that all keys of one conference or one user land in one Redis Cluster slot.
package fleet
