package proxy

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz"
)

// TestStatusPageShowsChannelsViewersHitRateAndOrigins checks what the edge reports to the admin listener's page:
// channels from the cache and from the authorizer's sessions, the hit rate and origin health. The edge's clock
// stands still, so the 1 s playlist micro-cache holds however slowly the machine runs.
func TestStatusPageShowsChannelsViewersHitRateAndOrigins(t *testing.T) {
	o := segmentOrigin(t)
	// The first origin is down for good; the second answers after failover marks the first.
	cfg := &Config{Origins: []OriginConfig{{URL: "http://127.0.0.1:1"}, {URL: o.url}}}
	cfg.Upstream.Timeout, cfg.Upstream.ConnectTimeout = 10*time.Second, 5*time.Second
	withPolicy(0, false)(cfg)
	// a002 is open: served, cached, but nobody's session.
	cfg.Auth.Groups = append([]authz.GroupConfig{{Name: "open", Channels: []string{"a002"}, Public: true}}, cfg.Auth.Groups...)
	now := time.Now()
	srv := buildEdge(t, cfg, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }})
	base := "http://" + serveEdge(t, srv).Addr().String()
	page := func() string {
		t.Helper()
		code, h, body := get(t, adminURL(srv)+"/", "Authorization", "Bearer "+testAdminToken)
		if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
			t.Fatalf("status page: %d %q\n%s", code, h.Get("Content-Type"), body)
		}
		// Names come from the cache and the paths: html/template escapes them whatever they are.
		if strings.Contains(string(body), "<script") {
			t.Fatal("status page contains a script")
		}
		return string(body)
	}
	want := func(page string, parts ...string) {
		t.Helper()
		for _, p := range parts {
			if !strings.Contains(page, p) {
				t.Fatalf("status page lacks %q:\n%s", p, page)
			}
		}
	}

	p := page()
	want(p, "no channel watched")
	if !regexp.MustCompile(`<meta http-equiv="refresh" content="\d+">`).MatchString(p) {
		t.Fatal("the status page must refresh itself")
	}

	tok := mintJWT(t, time.Hour, "a001")
	for i := 0; i < 3; i++ {
		get(t, base+"/a001/index.m3u8?token="+tok, "X-Forwarded-For", "1.2.3.4")
		get(t, base+"/play/a001/seg7.ts?token="+tok)
		get(t, base+"/play/a002/seg7.ts")
	}
	// One viewer of a001 (one session: three polls from one address, the untrusted X-Forwarded-For ignored), none
	// of a002, whose segment is cached: channels show up from the cache too.
	want(page(),
		`<td>a001</td><td>1</td><td>2</td>`,
		`<td>a002</td><td>0</td><td>1</td>`,
		`<b id="viewers">1</b>`,
		// 3 misses (first playlist, two segments) then 6 hits (playlist micro-cache, cached segments).
		`<b id="hit-rate">66.7%</b>`,
		`<td>127.0.0.1:1</td><td><span class="down">down</span></td>`,
		`<td>`+strings.TrimPrefix(o.url, "http://")+`</td><td><span class="up">up</span></td>`,
	)
	if st := srv.Stats(); st.CacheHits != 6 || st.CacheMisses != 3 {
		t.Fatalf("stats: %+v", st)
	}

	// One viewer counter: the page counts the authorizer's sessions, so a kicked viewer is gone from it at once.
	code, body := callAdmin(t, srv, "GET", "/api/sessions?channel=a001", "")
	var ss []authz.SessionInfo
	if err := json.Unmarshal(body, &ss); code != 200 || err != nil || len(ss) != 1 {
		t.Fatalf("sessions: %d %s %v", code, body, err)
	}
	if code, body := callAdmin(t, srv, "DELETE", "/api/sessions/"+ss[0].ID, ""); code != 200 {
		t.Fatalf("kick: %d %s", code, body)
	}
	want(page(), `<b id="viewers">0</b>`, `<td>a001</td><td>0</td><td>2</td>`)

	code, _, _ = get(t, adminURL(srv)+"/", "Authorization", "Bearer "+testAdminToken, "X-Method-Override", "x")
	if code != 200 {
		t.Fatal(code)
	}
	if code, _ := callAdmin(t, srv, http.MethodPost, "/", ""); code != 405 {
		t.Fatalf("POST /: %d, want 405", code)
	}
}
