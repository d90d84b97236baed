package redisstate_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/internal/fleet/fleettest"
)

// BenchmarkBanPropagation measures how long a ban made on node a takes to refuse a request on node b: the
// operator's call on a (one Redis script), the publish, b's subscription, b's new snapshot, b's refusal.
//
//	go test -run XXX -bench Propagation -benchtime 500x ./authz/redisstate/
func BenchmarkBanPropagation(b *testing.B) {
	srv := fleettest.Start(b)
	na := startNode(b, srv, "a", authConfig(0, false))
	nb := startNode(b, srv, "b", authConfig(0, false))
	viewers := make([]viewer, b.N)
	for i := range viewers {
		viewers[i] = viewer{tok: mint(b, fmt.Sprintf("user-%d", i), 0), ch: "a001", ua: "TV", ip: viewerIP}
		if d := nb.authorize(viewers[i]); !d.Allowed() {
			b.Fatal(d)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if _, err := na.az.Ban(authz.BanRequest{User: fmt.Sprintf("user-%d", i)}, t0); err != nil {
			b.Fatal(err)
		}
		nb.waitFor(b, "the ban refusing", func() bool { return nb.authorize(viewers[i]).Status == http.StatusForbidden })
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkKickPropagation measures how long a kick on node a takes to refuse the kicked session's token on
// node b.
func BenchmarkKickPropagation(b *testing.B) {
	srv := fleettest.Start(b)
	na := startNode(b, srv, "a", authConfig(0, false))
	nb := startNode(b, srv, "b", authConfig(0, false))
	viewers := make([]viewer, b.N)
	ids := make([]string, b.N)
	for i := range viewers {
		viewers[i] = viewer{tok: mint(b, fmt.Sprintf("user-%d", i), 0), ch: "a001", ua: "TV", ip: viewerIP}
		if d := na.authorize(viewers[i]); !d.Allowed() {
			b.Fatal(d)
		}
		if d := nb.authorize(viewers[i]); !d.Allowed() {
			b.Fatal(d)
		}
		ss := na.az.Sessions(authz.SessionFilter{User: fmt.Sprintf("user-%d", i)})
		if len(ss) != 1 {
			b.Fatalf("sessions %+v", ss)
		}
		ids[i] = ss[0].ID
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if _, err := na.az.Kick(ids[i], t0); err != nil {
			b.Fatal(err)
		}
		nb.waitFor(b, "the kick refusing", func() bool { return nb.authorize(viewers[i]).Status == http.StatusForbidden })
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	at := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
