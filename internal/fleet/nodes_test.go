package fleet_test

import (
	"slices"
	"testing"
	"time"
)

func TestNodesAnnounced(t *testing.T) {
	srv, a, b := startTwoMembers(t)
	t0 := now()
	if err := a.Announce(ctx(t), []byte(`{"sessions":3}`), 10*time.Second, t0); err != nil {
		t.Fatal(err)
	}
	if err := b.Announce(ctx(t), []byte(`{"sessions":5}`), 20*time.Second, t0); err != nil {
		t.Fatal(err)
	}
	f := func(at time.Time, want ...string) {
		t.Helper()
		ns, err := a.Nodes(ctx(t), at)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, n := range ns {
			got = append(got, n.Node+"="+string(n.Info))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("nodes at +%s: %q, want %q", at.Sub(t0), got, want)
		}
	}
	f(t0, `node-a={"sessions":3}`, `node-b={"sessions":5}`)
	f(t0.Add(10*time.Second), `node-b={"sessions":5}`)
	if err := b.Leave(ctx(t)); err != nil {
		t.Fatal(err)
	}
	f(t0, `node-a={"sessions":3}`)
	// The next announcement prunes the lapsed entry of node-a.
	if err := b.Announce(ctx(t), []byte(`{}`), 20*time.Second, t0.Add(11*time.Second)); err != nil {
		t.Fatal(err)
	}
	hash := "{hlsedge:nodes}"
	if n := srv.MustDo("HLEN", hash); n != "1" {
		t.Fatalf("HLEN %s = %s after pruning, want 1", hash, n)
	}
}
