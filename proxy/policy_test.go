package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/internal/testkit"
	"github.com/hlsedge/hlsedge/proxy/admin"
)

const testAdminToken = "admin-token-for-tests"

func segmentOrigin(t *testing.T) *testOrigin {
	return startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".m3u8") {
			w.Write([]byte(testPlaylist))
			return
		}
		w.Write([]byte("segment-bytes"))
	})
}

// withPolicy is withAuth plus the admin token and a session limit.
func withPolicy(limit int, soft bool) func(*Config) {
	return func(c *Config) {
		withAuth(c)
		c.Admin.Token = testAdminToken
		c.Auth.Sessions = authz.SessionsConfig{MaxPerUser: limit, Soft: soft}
	}
}

// callAdmin asks the admin API as the operator's script does: with the admin token and, for a body, as JSON.
func callAdmin(t *testing.T, srv *Server, method, path, body string) (int, []byte) {
	t.Helper()
	hdr := []string{"Authorization", "Bearer " + testAdminToken}
	if body != "" {
		hdr = append(hdr, "Content-Type", "application/json")
	}
	code, _, b := testkit.Do(t, client, method, adminURL(srv)+path, body, hdr...)
	return code, b
}

var childTokenRe = regexp.MustCompile(`(?m)^seg7\.ts\?token=(\S+)$`)

// play fetches the playlist as one device and returns the URL of its first segment.
func play(t *testing.T, base, ch, tok, ua string, want int) string {
	t.Helper()
	code, _, body := get(t, base+"/play/"+ch+"/index.m3u8?token="+url.QueryEscape(tok), "User-Agent", ua)
	if code != want {
		t.Fatalf("%s playlist as %q: %d %q, want %d", ch, ua, code, body, want)
	}
	if code != 200 {
		return ""
	}
	m := childTokenRe.FindStringSubmatch(string(body))
	if m == nil {
		t.Fatalf("no child URI in\n%s", body)
	}
	return base + "/play/" + ch + "/seg7.ts?token=" + m[1]
}

func TestPolicySessionLimitTwoDevices(t *testing.T) {
	base, _ := startEdge(t, withPolicy(1, false), segmentOrigin(t).url)
	tok := mintJWT(t, time.Hour, "a*")
	seg := play(t, base, "a001", tok, "TV/1.0", 200)
	code, _, body := get(t, base+"/play/a001/index.m3u8?token="+tok, "User-Agent", "Phone/2.0")
	if code != 403 || !strings.Contains(string(body), "too many sessions") {
		t.Fatalf("second device over a limit of 1: %d %q", code, body)
	}
	// The first device keeps playing.
	for range 3 {
		if code, _, _ := get(t, seg, "User-Agent", "TV/1.0"); code != 200 {
			t.Fatalf("first device segment: %d", code)
		}
	}
	// Without soft mode a channel switch is a new session, over the limit.
	play(t, base, "a002", tok, "TV/1.0", 403)

	softBase, _ := startEdge(t, withPolicy(1, true), segmentOrigin(t).url)
	play(t, softBase, "a001", tok, "TV/1.0", 200)
	play(t, softBase, "a002", tok, "TV/1.0", 200)
	play(t, softBase, "a001", tok, "Phone/2.0", 403)
}

func TestPolicyKickViaAdminAPI(t *testing.T) {
	base, srv := startEdge(t, withPolicy(0, false), segmentOrigin(t).url)
	tok := mintJWT(t, time.Hour, "a*")
	seg := play(t, base, "a001", tok, "TV", 200)
	if code, _, _ := get(t, seg, "User-Agent", "TV"); code != 200 {
		t.Fatalf("segment before the kick: %d", code)
	}
	// The API needs the admin token.
	resp, err := client.Get(adminURL(srv) + "/api/sessions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("sessions without the admin token: %d", resp.StatusCode)
	}
	code, body := callAdmin(t, srv, "GET", "/api/sessions?channel=a001&user=alice", "")
	var ss []authz.SessionInfo
	if err := json.Unmarshal(body, &ss); code != 200 || err != nil || len(ss) != 1 {
		t.Fatalf("sessions: %d %s %v", code, body, err)
	}
	if ss[0].User != "alice" || ss[0].Requests != 2 || ss[0].Bytes == 0 || ss[0].UserAgent != "TV" {
		t.Fatalf("session %+v", ss[0])
	}
	if strings.Contains(string(body), tok) {
		t.Fatal("the sessions view shows a token")
	}
	if code, _ := callAdmin(t, srv, "GET", "/api/sessions?channel=a002", ""); code != 200 {
		t.Fatal(code)
	}
	if code, body := callAdmin(t, srv, "DELETE", "/api/sessions/"+ss[0].ID, ""); code != 200 {
		t.Fatalf("kick: %d %s", code, body)
	}
	if code, _, body := get(t, seg, "User-Agent", "TV"); code != 403 || !strings.Contains(string(body), "closed by the operator") {
		t.Fatalf("next segment after the kick: %d %q", code, body)
	}
	play(t, base, "a001", tok, "TV", 403)
	if code, _ := callAdmin(t, srv, "DELETE", "/api/sessions/"+ss[0].ID, ""); code != 404 {
		t.Fatalf("kicking a closed session: %d", code)
	}
	if code, _ := callAdmin(t, srv, "POST", "/api/sessions", ""); code != 405 {
		t.Fatalf("POST /api/sessions: %d", code)
	}
}

func TestPolicyBanCIDR(t *testing.T) {
	base, srv := startEdge(t, withPolicy(0, false), segmentOrigin(t).url)
	tok := mintJWT(t, time.Hour, "a*")
	seg := play(t, base, "a001", tok, "TV", 200)
	// /16 is the widest IPv4 ban taken without "force" ('admin.min_ban_prefix_v4'); proxy/admin tests wider ones.
	code, body := callAdmin(t, srv, "POST", "/api/bans", `{"ip":"127.0.0.0/16","ttl":"1h","reason":"test"}`)
	var ban authz.Ban
	if err := json.Unmarshal(body, &ban); code != 201 || err != nil || ban.ID == "" || ban.IP != "127.0.0.0/16" {
		t.Fatalf("ban: %d %s", code, body)
	}
	if code, _, body := get(t, seg, "User-Agent", "TV"); code != 403 || !strings.Contains(string(body), "banned") {
		t.Fatalf("segment from a banned CIDR: %d %q", code, body)
	}
	if code, body := callAdmin(t, srv, "GET", "/api/bans", ""); code != 200 || !strings.Contains(string(body), ban.ID) {
		t.Fatalf("list: %d %s", code, body)
	}
	if code, _ := callAdmin(t, srv, "DELETE", "/api/bans/"+ban.ID, ""); code != 204 {
		t.Fatalf("unban: %d", code)
	}
	if code, _, _ := get(t, seg, "User-Agent", "TV"); code != 200 {
		t.Fatalf("segment after the ban was lifted: %d", code)
	}
	for _, bad := range []string{`{}`, `{"ip":"nope"}`, `{"user":"u","ttl":"soon"}`, `{"ip":"1.2.3.4","extra":1}`, `not json`} {
		if code, body := callAdmin(t, srv, "POST", "/api/bans", bad); code != 400 {
			t.Errorf("ban %s: %d %s", bad, code, body)
		}
	}
	// A token ban by the fingerprint the sessions view shows.
	if code, body := callAdmin(t, srv, "POST", "/api/bans", `{"user":"alice"}`); code != 201 {
		t.Fatalf("user ban: %d %s", code, body)
	}
	if code, _, _ := get(t, seg, "User-Agent", "TV"); code != 403 {
		t.Fatalf("segment of a banned user: %d", code)
	}
}

func TestPolicyDomainLock(t *testing.T) {
	for _, allowEmpty := range []bool{false, true} {
		base, _ := startEdge(t, func(c *Config) {
			withAuth(c)
			c.Auth.Groups[1].Rules = authz.RulesConfig{Domains: []string{"tv.example.com"}, AllowEmptyReferer: &allowEmpty}
		}, segmentOrigin(t).url)
		tok := mintJWT(t, time.Hour, "a*")
		u := base + "/play/a001/index.m3u8?token=" + tok
		if code, _, _ := get(t, u, "Referer", "https://tv.example.com/live"); code != 200 {
			t.Fatalf("allowed referer: %d", code)
		}
		if code, _, body := get(t, u, "Referer", "https://pirate.example.org/live"); code != 403 || !strings.Contains(string(body), "referer") {
			t.Fatalf("wrong referer: %d %q", code, body)
		}
		want := 403
		if allowEmpty {
			want = 200
		}
		if code, _, _ := get(t, u); code != want {
			t.Fatalf("empty referer with allow_empty_referer=%v: %d, want %d", allowEmpty, code, want)
		}
	}
}

// astraCall replays what Astra sends its "HTTP Request" backend: the viewer's query string, X-Real-* headers.
func astraCall(t *testing.T, srv *Server, query, realIP string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest("GET", adminURL(srv)+"/auth/astra?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"X-Session-ID": "1234567", "X-Channel-ID": "a001", "X-Real-IP": realIP, "X-Real-Path": "/play/a001/index.m3u8",
		"X-Real-UA": "SmartTV", "X-Real-Host": "live.example.com",
	} {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestAstraAuthEndpoint(t *testing.T) {
	_, srv := startEdge(t, withPolicy(0, false), segmentOrigin(t).url)
	good := mintJWT(t, time.Hour, "a001")
	code, h, body := astraCall(t, srv, "token="+good+"&foo=bar", "203.0.113.7")
	if code != 200 || h.Get("X-Session-Name") != "alice" {
		t.Fatalf("allow: %d %q %v", code, body, h)
	}
	if code, _, _ := astraCall(t, srv, "token="+mintJWT(t, time.Hour, "b002"), "203.0.113.7"); code != 403 {
		t.Fatalf("token for another channel: %d", code)
	}
	if code, _, _ := astraCall(t, srv, "foo=bar", "203.0.113.7"); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	expired, _ := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(testJWTSecret), Streams: []string{"a001"}, TTL: time.Minute, Now: time.Now().Add(-time.Hour)})
	if code, _, _ := astraCall(t, srv, "token="+expired, "203.0.113.7"); code != 403 {
		t.Fatalf("expired (410 inside) must be a 403 for Astra: %d", code)
	}
	// X-Real-IP is the viewer's address: an IP-bound securetoken checks against it.
	now := time.Now().Unix()
	st := token.MintSecureToken(testSTSecret, "st1", "203.0.113.7", now-300, now+3600, token.NewSalt())
	req := func(ip string) int {
		r, _ := http.NewRequest("GET", adminURL(srv)+"/auth/astra?token="+st, nil)
		r.Header.Set("X-Real-IP", ip)
		r.Header.Set("X-Real-Path", "/st1/index.m3u8")
		resp, err := client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := req("203.0.113.7"); c != 200 {
		t.Fatalf("securetoken for X-Real-IP: %d", c)
	}
	if c := req("198.51.100.1"); c != 403 {
		t.Fatalf("securetoken for another X-Real-IP: %d", c)
	}
	// Astra keeps its own sessions: the endpoint opens none.
	if code, body := callAdmin(t, srv, "GET", "/api/sessions", ""); code != 200 || string(body) != "[]\n" {
		t.Fatalf("sessions after /auth/astra: %d %s", code, body)
	}
}

func TestPolicyFlussonicBackendThroughEdge(t *testing.T) {
	var calls atomic.Int64
	mw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Query().Get("token") != "subscriber-77" || r.URL.Query().Get("name") != "a001" {
			w.WriteHeader(403)
			return
		}
		w.Header().Set("X-AuthDuration", "60")
		w.Header().Set("X-UserId", "77")
		w.Header().Set("X-Max-Sessions", "1")
	}))
	defer mw.Close()
	base, srv := startEdge(t, func(c *Config) {
		withAuth(c)
		c.Admin.Token = testAdminToken
		c.Auth.Groups = []authz.GroupConfig{{Name: "stalker", Backends: []authz.BackendConfig{{Protocol: authz.ProtocolFlussonic, URL: mw.URL}}}}
	}, segmentOrigin(t).url)
	code, _, body := get(t, base+"/play/a001/index.m3u8?token=subscriber-77", "User-Agent", "STB")
	if code != 200 || !strings.Contains(string(body), "seg7.ts?token=subscriber-77") {
		t.Fatalf("playlist via the middleware: %d\n%s", code, body)
	}
	for range 5 {
		if code, _, _ := get(t, base+"/play/a001/seg7.ts?token=subscriber-77", "User-Agent", "STB"); code != 200 {
			t.Fatalf("segment: %d", code)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("middleware calls %d for one viewer within X-AuthDuration, want 1", n)
	}
	if code, _, _ := get(t, base+"/play/a001/index.m3u8?token=subscriber-77", "User-Agent", "Other STB"); code != 403 {
		t.Fatalf("X-Max-Sessions: 1, second device: %d", code)
	}
	if code, _, _ := get(t, base+"/play/a001/index.m3u8?token=stolen", "User-Agent", "STB"); code != 403 {
		t.Fatalf("middleware refusal: %d", code)
	}
	_, metrics := callAdmin(t, srv, "GET", "/metrics", "")
	for _, want := range []string{
		`hlsedge_auth_backend_calls_total{group="stalker",backend="flussonic0",protocol="flussonic"} 2`,
		`hlsedge_auth_backend_results_total{group="stalker",backend="flussonic0",protocol="flussonic",result="allow"} 1`,
		`hlsedge_auth_backend_duration_seconds_count{group="stalker",backend="flussonic0",protocol="flussonic"} 2`,
		`hlsedge_auth_sessions_open 1`,
		`hlsedge_auth_sessions_refused_total 1`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	code, body = callAdmin(t, srv, "GET", "/api/stats", "")
	var st admin.Stats
	if err := json.Unmarshal(body, &st); code != 200 || err != nil || st.Viewers["a001"] != 1 || len(st.Auth.Backends) != 1 {
		t.Fatalf("stats: %d %s", code, body)
	}
}
