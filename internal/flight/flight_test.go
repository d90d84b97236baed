package flight

import (
	"errors"
	"runtime"
	"sync"
	"testing"
)

func TestDoSharesOneCall(t *testing.T) {
	var g Group[string, int]
	release := make(chan struct{})
	calls := 0
	const n = 20
	var wg sync.WaitGroup
	results := make(chan int, n)
	leaderIn := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		v, _, _ := g.Do("k", func() (int, error) { calls++; close(leaderIn); <-release; return 7, nil })
		results <- v
	}()
	<-leaderIn
	for range n - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, _, shared := g.Do("k", func() (int, error) { t.Error("second call ran"); return 0, nil })
			if !shared {
				t.Error("waiter not shared")
			}
			results <- v
		}()
	}
	for g.Waiters("k") < n-1 {
		// Every waiter joins before the leader is released; spinning on the counter, not on a clock.
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	close(results)
	for v := range results {
		if v != 7 {
			t.Fatalf("got %d, want 7", v)
		}
	}
	if calls != 1 || g.InFlight() != 0 {
		t.Fatalf("calls %d in flight %d", calls, g.InFlight())
	}
}

func TestPanicReachesEveryCallerAsError(t *testing.T) {
	var g Group[int, string]
	leaderIn, release := make(chan struct{}), make(chan struct{})
	errs := make(chan error, 2)
	go func() {
		_, err, _ := g.Do(1, func() (string, error) { close(leaderIn); <-release; panic("boom") })
		errs <- err
	}()
	<-leaderIn
	go func() { _, err, _ := g.Do(1, func() (string, error) { return "", nil }); errs <- err }()
	for g.Waiters(1) < 1 {
		runtime.Gosched()
	}
	close(release)
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrPanicked) {
			t.Fatalf("err = %v, want ErrPanicked", err)
		}
	}
	if _, err, _ := g.Do(1, func() (string, error) { return "ok", nil }); err != nil {
		t.Fatalf("call after a panic: %v", err)
	}
}
