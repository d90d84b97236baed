package proxy

import (
	"os"
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
	demo, err := ParseConfig(configs.Demo)
	if err != nil {
		t.Fatalf("configs/demo.yaml: %v", err)
	}
	demo.SetDefaults()
	if err := demo.Validate(); err != nil {
		t.Fatalf("configs/demo.yaml does not validate: %v", err)
	}
}
