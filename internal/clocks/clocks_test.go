package clocks

import (
	"context"
	"testing"
	"time"
)

func TestManual(t *testing.T) {
	t0 := time.Unix(1000, 0)
	clk := NewManual(t0)
	ctx, cancel := context.WithCancel(context.Background())
	woke := make(chan bool, 2)
	go func() { woke <- clk.SleepUntil(ctx, t0.Add(time.Second)) }()
	go func() { woke <- clk.SleepUntil(ctx, t0.Add(2*time.Second)) }()
	clk.WaitSleepers(func(n int) bool { return n == 2 }, nil)
	clk.Advance(999 * time.Millisecond)
	if n, _ := clk.WaitSleepers(func(int) bool { return true }, nil); n != 2 {
		t.Fatalf("%d sleepers after advancing short of their time, want 2", n)
	}
	clk.Advance(time.Millisecond)
	if !<-woke {
		t.Fatal("a sleeper whose time came was not woken by Advance")
	}
	clk.WaitSleepers(func(n int) bool { return n == 1 }, nil)
	cancel()
	if <-woke {
		t.Fatal("a cancelled sleeper reported its time as reached")
	}
	clk.WaitSleepers(func(n int) bool { return n == 0 }, nil)
	if !clk.Now().Equal(t0.Add(time.Second)) {
		t.Fatalf("Now %v after advancing 1 s from %v", clk.Now(), t0)
	}
	clk.AdvanceTo(t0.Add(3 * time.Second))
	if !clk.Now().Equal(t0.Add(3 * time.Second)) {
		t.Fatalf("Now %v after AdvanceTo 3 s past %v", clk.Now(), t0)
	}
	if clk.SleepUntil(ctx, t0) {
		t.Fatal("SleepUntil a past time with a cancelled context reported true")
	}
	if !clk.SleepUntil(context.Background(), t0) {
		t.Fatal("SleepUntil a past time did not return true at once")
	}
	done := make(chan struct{})
	close(done)
	if n, ok := clk.WaitSleepers(func(n int) bool { return n > 0 }, done); ok || n != 0 {
		t.Fatalf("WaitSleepers with done closed and nobody asleep = %d, %v", n, ok)
	}
}

func TestWall(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	if !(Wall{}).SleepUntil(ctx, time.Now().Add(-time.Second)) {
		t.Fatal("SleepUntil a past time did not return true at once")
	}
	cancel()
	if (Wall{}).SleepUntil(ctx, time.Now().Add(time.Hour)) {
		t.Fatal("SleepUntil with a cancelled context reported its time as reached")
	}
	if (Wall{}).SleepUntil(ctx, time.Now().Add(-time.Second)) {
		t.Fatal("SleepUntil a past time with a cancelled context reported true")
	}
}
