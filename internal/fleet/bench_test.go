package fleet

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/internal/fleet/fleettest"
)

// The primitives' cost on loopback: go test -run XXX -bench . -benchmem ./internal/fleet/

func benchMember(b *testing.B) *Client {
	b.Helper()
	srv := fleettest.Start(b)
	c, err := New(Config{Address: srv.Addr}, "bench", slog.New(slog.DiscardHandler), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	for c.Degraded() {
		<-c.HealthChanged()
	}
	return c
}

// BenchmarkSet is the client's own floor: one SET, no script, the caller's deadline.
func BenchmarkSet(b *testing.B) {
	c := benchMember(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rc, _ := c.conn()
	b.ReportAllocs()
	for b.Loop() {
		if err := rc.Do(ctx, rc.B().Set().Key("k").Value("v").Build()).Error(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublish with the caller's deadline, as a hot path would call it.
func BenchmarkPublish(b *testing.B) {
	c := benchMember(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := []byte(`{"event":"chat_message","text":"hello"}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Publish(ctx, "bench", p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublishNoDeadline pays for the read_timeout timer the member adds.
func BenchmarkPublishNoDeadline(b *testing.B) {
	c := benchMember(b)
	p := []byte(`{"event":"chat_message","text":"hello"}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Publish(context.Background(), "bench", p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublishParallel shows auto-pipelining: concurrent publishes share round trips.
func BenchmarkPublishParallel(b *testing.B) {
	c := benchMember(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := []byte(`{"event":"chat_message","text":"hello"}`)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.Publish(ctx, "bench", p); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkFanout is publish to delivery on the same member: a chat message's trip through Redis.
func BenchmarkFanout(b *testing.B) {
	c := benchMember(b)
	got := make(chan struct{}, 1)
	sub := c.Subscribe("bench-fanout", func([]byte) error { got <- struct{}{}; return nil })
	<-sub.Ready()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := []byte(`{"event":"chat_message","text":"hello"}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Publish(ctx, "bench-fanout", p); err != nil {
			b.Fatal(err)
		}
		<-got
	}
}

// BenchmarkAdmitSessionRefresh is the refresh a live session makes every few seconds (the script's common case).
func BenchmarkAdmitSessionRefresh(b *testing.B) {
	c := benchMember(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := SessionLimit{Limit: 3, Idle: 30 * time.Second}
	t0 := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		a, err := c.AdmitSession(ctx, "user-1", "0123456789abcdef0123456789abcdef", l, t0)
		if err != nil || !a.Admitted {
			b.Fatal(a, err)
		}
	}
}

// BenchmarkAdmitSessionParallel spreads refreshes over many users, as a busy edge would.
func BenchmarkAdmitSessionParallel(b *testing.B) {
	c := benchMember(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := SessionLimit{Limit: 3, Idle: 30 * time.Second}
	t0 := time.Now()
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		user := "user-" + strconv.FormatInt(n.Add(1), 10)
		for pb.Next() {
			if _, err := c.AdmitSession(ctx, user, "0123456789abcdef0123456789abcdef", l, t0); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkThrottleDue is what the request path pays to decide that no refresh is due: no Redis, no allocation.
func BenchmarkThrottleDue(b *testing.B) {
	th := NewThrottle(5 * time.Second)
	var last atomic.Int64
	now := time.Now().UnixNano()
	th.Due(&last, now)
	b.ReportAllocs()
	for b.Loop() {
		if th.Due(&last, now) {
			b.Fatal("due")
		}
	}
}
