package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckSummarizesAndNeverPrintsSecrets runs `hlsedge check` on a valid file with a fail-open backend and an
// open admin listener: it exits 0, summarizes, warns, and prints none of the secrets.
func TestCheckSummarizesAndNeverPrintsSecrets(t *testing.T) {
	dir := t.TempDir()
	const secret = "jwt-secret-that-must-never-be-printed-0123456789"
	const adminToken = "admin-token-never-printed-0123456789"
	keyFile := filepath.Join(dir, "jwt.key")
	if err := os.WriteFile(keyFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := `
listen: 127.0.0.1:18080
admin: {listen: 0.0.0.0:18090}
origins: [{url: http://127.0.0.1:18000}]
routes: [{prefix: /play/}]
auth:
  jwt: {algorithms: [HS256], secret_file: ` + keyFile + `}
  edge: {secret: edge-secret-never-printed-0123456789abcdef}
  groups:
    - name: mw
      channels: ["*"]
      backends: [{protocol: astra, url: "http://user:pass@127.0.0.1:9/check?key=k"}]
      on_backend_error: allow
`
	path := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut lockedBuffer
	if code := run(context.Background(), []string{"check", "--config", path}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errOut.String())
	}
	got := out.String()
	for _, want := range []string{"config ok", "listen:     127.0.0.1:18080", "origins:    http://127.0.0.1:18000",
		"route:      /play/", "jwt (", "group:      mw", "backend=astra:http://…@127.0.0.1:9/check?…",
		`group "mw": on_backend_error: allow`, "admin listener 0.0.0.0:18090 is not on loopback and has no admin.token"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	for _, s := range []string{secret, adminToken, "edge-secret-never-printed", "pass", "key=k"} {
		if strings.Contains(got+errOut.String(), s) {
			t.Errorf("check printed the secret %q:\n%s", s, got)
		}
	}
}

// TestCheckFailsNamingTheField: a wrong field exits 1 and the message names it, like serve.
func TestCheckFailsNamingTheField(t *testing.T) {
	f := func(cfg, want string) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "edge.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errOut lockedBuffer
		if code := run(context.Background(), []string{"check", "--config", path}, &out, &errOut); code != 1 {
			t.Fatalf("exit %d, want 1; stdout %s", code, out.String())
		}
		if !strings.Contains(errOut.String(), want) {
			t.Fatalf("stderr %q lacks %q", errOut.String(), want)
		}
	}
	base := "listen: 127.0.0.1:18080\norigins: [{url: http://127.0.0.1:18000}]\nroutes: [{prefix: /play/}]\n"
	f(base+"upstream: {timeout: -1s}\nauth: {disabled: true}\n", "'upstream.timeout'")
	f(base+"auth: {jwt: {algorithms: [HS256], secret_file: /nonexistent/jwt.key}}\n", "'auth.jwt.secret_file'")
	f(base+"auth: {disabled: true}\nbogus_field: 1\n", "bogus_field")
}
