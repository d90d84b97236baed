//go:build race

package authz

// raceEnabled skips allocation counts: the race detector makes sync.Pool drop items on purpose.
const raceEnabled = true
