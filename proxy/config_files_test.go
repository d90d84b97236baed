package proxy

import (
	"os"
	"strings"
	"testing"

	"github.com/hlsedge/hlsedge/configs"
)

// The example files are documentation operators copy; a field they name that the code does not know would be
// refused at start, so parse them strictly here.
func TestExampleConfigsParse(t *testing.T) {
	data, err := os.ReadFile("../configs/edge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseConfig(data); err != nil {
		t.Fatalf("configs/edge.yaml: %v", err)
	}
	// The redis section is commented out (its presence makes a fleet); uncommented, it must parse too.
	var block []string
	for _, l := range strings.Split(string(data), "\n") {
		if l == "# redis:" {
			block = append(block, "redis:")
			continue
		}
		if len(block) > 0 {
			if !strings.HasPrefix(l, "#   ") {
				break // the block ends at its first line that is not an indented comment
			}
			block = append(block, strings.TrimPrefix(l, "#"))
		}
	}
	if len(block) < 10 {
		t.Fatalf("configs/edge.yaml documents no redis section: %q", block)
	}
	rc, err := ParseConfig([]byte(strings.Join(block, "\n")))
	if err != nil {
		t.Fatalf("configs/edge.yaml's redis section: %v\n%s", err, strings.Join(block, "\n"))
	}
	if rc.Redis == nil || rc.Redis.Sentinel == nil || rc.Redis.TLS == nil || rc.Redis.ProbeInterval == 0 {
		t.Fatalf("redis section parsed as %+v", rc.Redis)
	}
	demo, err := ParseConfig(configs.Demo)
	if err != nil {
		t.Fatalf("configs/demo.yaml: %v", err)
	}
	demo.SetDefaults()
	if err := demo.Validate(); err != nil {
		t.Fatalf("configs/demo.yaml does not validate: %v", err)
	}
}
