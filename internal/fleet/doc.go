// Package fleet is an edge's membership of a fleet on Redis: the shared bans and kicks, per-user limits and
// conference state that let several edges behind one balancer act as one.
//
// Every call fails fast with ErrUnavailable while Redis is unreachable, so that callers fall back to what they
// know locally instead of stalling a request for a timeout; OnResync tells them when to load the fleet's state
// again. Every key a member writes carries a hash tag (`{hlsedge:conf:ROOM}:...`), so that all keys of one
// conference or one user land in one Redis Cluster slot.
//
// The client is rueidis rather than go-redis: it pipelines concurrent commands on a few shared connections
// without being asked (a busy edge's refreshes and publishes share round trips instead of a pool of
// connections), and a publish with the caller's deadline allocates nothing (BenchmarkPublish; go-redis costs
// several allocations and about ten times the CPU per SET in Centrifugo's measurements).
package fleet
