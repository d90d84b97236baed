package configs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnitVerifies runs systemd-analyze verify on the shipped unit (make test installs systemd). The
// unit's ExecStart points at /usr/local/bin/hlsedge, which the test machine need not have, so a copy points at
// this test's own executable; everything else is verified as shipped. systemd only warns about many bad values
// and exits 0, so any line naming the unit fails the test too.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze not found (make test installs the systemd package): %v", err)
	}
	unit, err := os.ReadFile("hlsedge.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecReload=/bin/kill -HUP $MAINPID", "User=hlsedge", "NoNewPrivileges=yes", "LimitNOFILE=262144"} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("unit lacks %q", want)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "hlsedge.service")
	unit = bytes.ReplaceAll(unit, []byte("/usr/local/bin/hlsedge"), []byte(self))
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "hlsedge.service") {
			t.Errorf("systemd-analyze: %s", line)
		}
	}
}
