package authz

import "time"

// Stats is a snapshot of the authorizer's counters, for the admin API and the metrics page. authz keeps plain
// atomic counters and leaves the exposition format to the caller, so it needs no metrics library.
type Stats struct {
	Backends []BackendStats `json:"backends"`
	Sessions SessionStats   `json:"sessions"`
	Bans     int            `json:"bans"`
	Kicks    int            `json:"kicks"`
}

// BackendStats counts one middleware's calls.
type BackendStats struct {
	Group    string `json:"group"`
	Name     string `json:"name"`
	Protocol string `json:"protocol"`
	Calls    uint64 `json:"calls"`
	Allows   uint64 `json:"allows"`
	Denies   uint64 `json:"denies"`
	Errors   uint64 `json:"errors"`
	Timeouts uint64 `json:"timeouts"`
	// Cancelled calls lost the race to another backend's allow.
	Cancelled uint64 `json:"cancelled"`
	// LatencySeconds is the sum of call durations; with Calls it gives the mean.
	LatencySeconds float64 `json:"latency_seconds"`
	// Buckets is the cumulative latency histogram; the last bucket's LE is +Inf (0 here).
	Buckets []LatencyBucket `json:"buckets"`
}

// LatencyBucket counts calls that took at most LE seconds; LE 0 is +Inf.
type LatencyBucket struct {
	LE    float64 `json:"le"`
	Count uint64  `json:"count"`
}

// SessionStats counts the session table's work.
type SessionStats struct {
	Open      int64  `json:"open"`
	Opened    uint64 `json:"opened"`
	Closed    uint64 `json:"closed"`
	Refused   uint64 `json:"refused"`
	Untracked uint64 `json:"untracked"`
	// Webhook counts events sent, dropped on a full queue, and failed to post.
	WebhookSent    uint64 `json:"webhook_sent"`
	WebhookDropped uint64 `json:"webhook_dropped"`
	WebhookFailed  uint64 `json:"webhook_failed"`
}

// Stats reports the counters: the middlewares' here, the sessions', bans' and kicks' from the viewer state.
func (a *Authorizer) Stats() Stats {
	var st Stats
	if a.state != nil {
		st = a.state.Stats()
	}
	for _, g := range a.groups {
		for _, b := range g.backends {
			bs := BackendStats{
				Group: g.name, Name: b.name, Protocol: b.protocol,
				Calls: b.st.calls.Load(), Allows: b.st.allows.Load(), Denies: b.st.denies.Load(),
				Errors: b.st.errors.Load(), Timeouts: b.st.timeouts.Load(), Cancelled: b.st.cancelled.Load(),
				LatencySeconds: time.Duration(b.st.latencyNanos.Load()).Seconds(),
			}
			var cum uint64
			for i := range b.st.buckets {
				cum += b.st.buckets[i].Load()
				le := 0.0
				if i < len(latencyBuckets) {
					le = latencyBuckets[i].Seconds()
				}
				bs.Buckets = append(bs.Buckets, LatencyBucket{LE: le, Count: cum})
			}
			st.Backends = append(st.Backends, bs)
		}
	}
	return st
}
