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

// BenchmarkAuthorizeCachedSession is the request path of a known viewer with a session limit: the decision
// cache and the session, with the viewer state in memory (alone) and shared with a fleet. The fleet's adds a
// table lookup and no Redis round trip, and neither allocates.
func BenchmarkAuthorizeCachedSession(b *testing.B) {
	f := func(b *testing.B, n *node, az *authz.Authorizer) {
		v := viewer{tok: mint(b, "viewer", 0), ch: "a001", ua: "TV", ip: viewerIP}
		nn := &node{name: "bench", az: az, st: n.st}
		nn.waitCached(b, v)
		req := &authz.Request{Path: []byte("/play/a001/index.m3u8"), Channel: []byte("a001"), ClientIP: v.ip, UserAgent: []byte(v.ua)}
		c := carrier{"token": []byte(v.tok)}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			now := time.Now()
			if d := az.Authorize(req, c, now); !d.Allowed() || !d.Cached {
				b.Fatal(d)
			}
		}
	}
	srv := fleettest.Start(b)
	n := startNode(b, srv, "a", authConfig(2, false))
	b.Run("memory", func(b *testing.B) {
		az, err := authz.New(authConfig(2, false), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer az.Close()
		f(b, n, az)
	})
	b.Run("fleet", func(b *testing.B) { f(b, n, n.az) })
}

// BenchmarkLimitAccuracy opens, for one user per round, devices devices at once spread over two nodes, with
// max_per_user limit, and reports how many rounds admitted exactly the limit (the goal is all of them) and the
// most devices any round admitted.
//
//	go test -run XXX -bench LimitAccuracy -benchtime 200x ./authz/redisstate/
func BenchmarkLimitAccuracy(b *testing.B) {
	const limit, devices = 2, 16
	srv := fleettest.Start(b)
	na := startNode(b, srv, "a", authConfig(limit, false))
	nb := startNode(b, srv, "b", authConfig(limit, false))
	nodes := make([]*node, devices)
	for i := range nodes {
		nodes[i] = []*node{na, nb}[i%2]
	}
	exact, most := 0, 0
	b.ResetTimer()
	for r := range b.N {
		tok := mint(b, fmt.Sprintf("user-%d", r), 0)
		vs := make([]viewer, devices)
		for i := range vs {
			vs[i] = viewer{tok: tok, ch: "a001", ua: fmt.Sprintf("device-%d", i), ip: viewerIP}
		}
		n := count(admitAll(nodes, vs))
		if n == limit {
			exact++
		}
		most = max(most, n)
	}
	b.StopTimer()
	b.ReportMetric(100*float64(exact)/float64(b.N), "%exact")
	b.ReportMetric(float64(most), "max-admitted")
}
