package admin_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/proxy"
	"github.com/hlsedge/hlsedge/proxy/admin"
)

// fakeReloader answers reloads with the results a test queues and remembers the last one, as cmd/hlsedge does.
type fakeReloader struct {
	mu   sync.Mutex
	next []admin.ReloadResult
	last admin.ReloadResult
}

func (f *fakeReloader) Reload() admin.ReloadResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.next[0]
	f.next = f.next[1:]
	f.last = r
	return r
}

func (f *fakeReloader) LastReload() admin.ReloadResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// startReloadable serves an admin listener whose config can be applied again, with rl as its Reloader.
func startReloadable(t *testing.T, cfg *proxy.Config, rl admin.Reloader) (string, *admin.Server, *authz.Authorizer) {
	t.Helper()
	cfg.Origins = []proxy.OriginConfig{{URL: "http://127.0.0.1:9"}}
	cfg.Auth = authz.Config{JWT: &authz.JWTConfig{JWTConfig: token.JWTConfig{Algorithms: []string{"HS256"}, Secret: testJWTSecret}}}
	return serveAdmin(t, cfg, rl)
}

// POST /api/reload answers the reload's outcome as JSON, 200 when the new config is in force and 422 with the
// field's error when the old one stays; the status page shows when the config was loaded and the failure.
func TestReloadEndpointAndStatusPage(t *testing.T) {
	loaded := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	rl := &fakeReloader{last: admin.ReloadResult{LoadedAt: loaded}, next: []admin.ReloadResult{
		{Result: "ok", At: loaded.Add(time.Hour), LoadedAt: loaded.Add(time.Hour), Changed: []string{"origins"},
			RestartRequired: []string{"server.read_timeout"}},
		{Result: "error", Error: "invalid config: 'cache.segment_ttl' must be greater than zero", At: loaded.Add(2 * time.Hour),
			LoadedAt: loaded.Add(time.Hour)},
	}}
	cfg := &proxy.Config{}
	cfg.Admin.Token = testToken
	base, _, _ := startReloadable(t, cfg, rl)
	auth := []string{"Authorization", "Bearer " + testToken}
	json_ := append([]string{"Content-Type", "application/json"}, auth...)

	if code, _, _ := do(t, http.MethodPost, base+"/api/reload", "", "Content-Type", "application/json"); code != http.StatusUnauthorized {
		t.Fatalf("reload without the admin token: %d", code)
	}
	if code, _, _ := do(t, http.MethodPost, base+"/api/reload", "", auth...); code != http.StatusUnsupportedMediaType {
		t.Fatalf("reload without a JSON content type (what a cross-site form sends): %d", code)
	}
	if code, _, _ := do(t, http.MethodGet, base+"/api/reload", "", auth...); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /api/reload: %d", code)
	}
	code, _, body := do(t, http.MethodPost, base+"/api/reload", "{}", json_...)
	var res admin.ReloadResult
	if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil || res.Result != "ok" || res.RestartRequired[0] != "server.read_timeout" {
		t.Fatalf("a reload that worked: %d %s", code, body)
	}
	code, _, body = do(t, http.MethodPost, base+"/api/reload", "", json_...)
	if err := json.Unmarshal([]byte(body), &res); code != http.StatusUnprocessableEntity || err != nil || res.Result != "error" ||
		!strings.Contains(res.Error, "'cache.segment_ttl'") || !res.LoadedAt.Equal(loaded.Add(time.Hour)) {
		t.Fatalf("a reload that failed: %d %s", code, body)
	}
	_, _, page := do(t, http.MethodGet, base+"/", "", auth...)
	for _, want := range []string{"config loaded 2030-01-02 04:04:05 UTC", "failed", "the previous config stays in force",
		"&#39;cache.segment_ttl&#39; must be greater than zero"} {
		if !strings.Contains(page, want) {
			t.Fatalf("status page lacks %q:\n%s", want, page)
		}
	}
}

// The admin token comes from a file or the environment as well, and a reload applies a new one at once.
func TestAdminTokenSourcesAndApply(t *testing.T) {
	t.Setenv("HLSEDGE_TEST_ADMIN_TOKEN", "token-from-env")
	file := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(file, []byte("token-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &proxy.Config{}
	cfg.Admin.TokenEnv = "HLSEDGE_TEST_ADMIN_TOKEN"
	base, srv, auth := startReloadable(t, cfg, nil)
	bearer := func(tok string) int {
		t.Helper()
		code, _, _ := do(t, http.MethodGet, base+"/api/bans", "", "Authorization", "Bearer "+tok)
		return code
	}
	if bearer("token-from-env") != 200 || bearer("token-from-file") != 401 {
		t.Fatal("the admin token from the environment is not the one asked for")
	}
	next := cfg.Admin
	next.TokenEnv, next.TokenFile = "", file
	if err := next.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Apply(next, auth); err != nil {
		t.Fatal(err)
	}
	if bearer("token-from-file") != 200 || bearer("token-from-env") != 401 {
		t.Fatal("a reloaded admin token is not in force")
	}
	bad := cfg.Admin
	bad.Token = "inline"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "'admin.token', 'admin.token_file' and 'admin.token_env' are sources of one key") {
		t.Fatalf("two sources for the admin token: %v", err)
	}
	if code, _, _ := do(t, http.MethodPost, base+"/api/reload", "", "Content-Type", "application/json", "Authorization", "Bearer token-from-file"); code != http.StatusNotFound {
		t.Fatalf("/api/reload without a Reloader: %d", code)
	}
}
