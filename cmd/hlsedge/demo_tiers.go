package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/hlsedge/hlsedge/proxy"
)

// demoTierEdges is how many edges `hlsedge demo --tiers` puts behind its shield.
const demoTierEdges = 2

// runDemoTiers is `hlsedge demo --tiers`: the origin (already started by runDemo) as the headend, one shield in
// front of it ('tier.role: shield') and two edges whose origin is the shield, so that both edges' viewers cost
// the headend one fetch per segment. The edges listen on the configured ports and the next ones up (8080, 8180;
// admin 8090, 8190), the shield above them (8280, admin 8290), or each on port 0 when so asked.
func runDemoTiers(ctx context.Context, d *demoNodes, originURL, channel string, stdout io.Writer) error {
	// A fresh tier key per run: the tiers trust each other through it, and no published key opens a shield.
	var kb [32]byte
	if _, err := rand.Read(kb[:]); err != nil {
		return fmt.Errorf("making the demo tier key: %w", err)
	}
	key := hex.EncodeToString(kb[:])
	// The shield first: the edges need its address, which is only known once it listens when its port is 0.
	shield, err := d.start("shield", demoTierEdges, originURL, func(cfg *proxy.Config) {
		cfg.Tier = proxy.TierConfig{Role: "shield", Key: key}
	})
	if err != nil {
		d.stop()
		return err
	}
	shieldURL := "http://" + shield.ln.Addr().String()
	for k := range demoTierEdges {
		if _, err := d.start(fmt.Sprintf("edge%d", k+1), k, shieldURL, func(cfg *proxy.Config) {
			cfg.Origins[0].Shield = true
			cfg.Tier = proxy.TierConfig{Key: key}
		}); err != nil {
			d.stop()
			return err
		}
	}
	fmt.Fprintf(stdout, "hlsedge demo: headend (origin) %s, shield %s (admin http://%s), %d edges behind the shield\n",
		originURL, shieldURL, shield.adminAddr(), demoTierEdges)
	for _, n := range d.started[1:] {
		if err := d.printLinks(stdout, n, channel); err != nil {
			d.stop()
			return err
		}
	}
	fmt.Fprintf(stdout, "stats: curl %s/stats   (the headend's fetch counts: kinds.segment and uris, one fetch per segment for both edges)\n", originURL)
	fmt.Fprintln(stdout, "stop with Ctrl-C")
	return d.serve(ctx)
}
