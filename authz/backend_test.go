package authz

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// middleware is a real HTTP auth backend on 127.0.0.1 that counts its calls.
type middleware struct {
	*httptest.Server
	calls atomic.Int64
}

func startMiddleware(t *testing.T, h func(w http.ResponseWriter, r *http.Request)) *middleware {
	t.Helper()
	m := &middleware{}
	// Held: tests take the middleware down by closing it, and expect connections refused from then on.
	m.Server = newHeldServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.calls.Add(1)
		h(w, r)
	}))
	t.Cleanup(m.Close)
	return m
}

func backendConfig(backends ...BackendConfig) Config {
	for i := range backends {
		if backends[i].Timeout == 0 {
			// A safety net, not a measure: a middleware that answers must not time out on a loaded CI machine.
			// Tests of the timeout set their own.
			backends[i].Timeout = 30 * time.Second
		}
	}
	return Config{Groups: []GroupConfig{{Name: "mw", Backends: backends}}, Sessions: SessionsConfig{Disabled: true}}
}

func newTestAuthz(t testing.TB, cfg Config, log *slog.Logger, opts ...Option) *Authorizer {
	t.Helper()
	a, err := New(cfg, log, append([]Option{WithoutJanitor()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

// wait lets ristretto apply its asynchronous Set, so that the next request can hit.
func (a *Authorizer) wait() {
	if a.cache != nil {
		a.cache.c.Wait()
	}
}

func astraReq(tok, ua string) (*Request, *carrier) {
	r := &Request{
		Path: []byte("/play/a001/index.m3u8"), Channel: []byte("a001"), ClientIP: clientIP,
		UserAgent: []byte(ua), Host: []byte("live.example.com"), RawQuery: []byte("token=" + tok + "&foo=bar"),
	}
	return r, q(tok)
}

func TestAstraBackendProtocol(t *testing.T) {
	var bad atomic.Value
	m := startMiddleware(t, func(w http.ResponseWriter, r *http.Request) {
		h := r.Header
		for k, want := range map[string]string{
			"X-Channel-Id": "a001", "X-Real-Ip": clientIP.String(), "X-Real-Path": "/play/a001/index.m3u8",
			"X-Real-Ua": "SmartTV/1.0", "X-Real-Host": "live.example.com",
		} {
			if got := h.Get(k); got != want {
				bad.Store(k + "=" + got)
			}
		}
		if h.Get("X-Session-Id") == "" || r.URL.Query().Get("foo") != "bar" {
			bad.Store("session id or query: " + r.URL.RawQuery)
		}
		if r.URL.Query().Get("token") == "123" {
			w.Header().Set("X-Session-Name", "alice")
			return
		}
		w.WriteHeader(http.StatusForbidden)
	})
	a := newTestAuthz(t, backendConfig(BackendConfig{Protocol: ProtocolAstra, URL: m.URL + "/check"}), nil)

	r, c := astraReq("123", "SmartTV/1.0")
	d := a.Authorize(r, c, testNow)
	if !d.Allowed() || d.UserID != "alice" || d.Cached {
		t.Fatalf("allow: %+v", d)
	}
	if v := bad.Load(); v != nil {
		t.Fatalf("middleware saw a wrong header or query: %v", v)
	}
	if got := string(a.AppendChildQuery(nil, r, &d, testNow)); got != "token=123" {
		t.Fatalf("children of a backend group carry the middleware's token: %q", got)
	}
	a.wait()
	if d := a.Authorize(r, c, testNow.Add(time.Second)); !d.Cached || !d.Allowed() {
		t.Fatalf("second request must be a cache hit: %+v", d)
	}
	if n := m.calls.Load(); n != 1 {
		t.Fatalf("backend calls %d, want 1 (cached)", n)
	}
	r2, c2 := astraReq("999", "SmartTV/1.0")
	if d := a.Authorize(r2, c2, testNow); d.Status != http.StatusForbidden || !strings.Contains(d.Reason, "refused by auth backend") {
		t.Fatalf("deny: %+v", d)
	}
	a.wait()
	a.Authorize(r2, c2, testNow)
	if n := m.calls.Load(); n != 2 {
		t.Fatalf("backend calls %d, want 2 (the refusal is cached too)", n)
	}
	// Past cache_for (30s) the backend is asked again.
	a.Authorize(r, c, testNow.Add(31*time.Second))
	if n := m.calls.Load(); n != 3 {
		t.Fatalf("backend calls %d, want 3 after cache_for", n)
	}
}

func TestBackendCoalescing(t *testing.T) {
	release := make(chan struct{})
	m := startMiddleware(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	// The longest timeout allowed: the leader waits in the backend for the others, however slow the machine.
	a := newTestAuthz(t, backendConfig(BackendConfig{Protocol: ProtocolAstra, URL: m.URL, Timeout: time.Minute}), nil)
	const n = 20
	var wg sync.WaitGroup
	var allowed atomic.Int64
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, c := astraReq("tok-coalesced", "ua")
			if a.Authorize(r, c, testNow).Allowed() {
				allowed.Add(1)
			}
		}()
	}
	// Every request but the leader's joins the flight before the backend answers: the leader is held in the
	// backend until then, so the count is reached whatever the scheduling.
	key := flightKey{tok: "tok-coalesced", ch: "a001", ip: clientIP}
	for a.flights.Waiters(key) < n-1 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if allowed.Load() != n {
		t.Fatalf("allowed %d of %d", allowed.Load(), n)
	}
	if c := m.calls.Load(); c != 1 {
		t.Fatalf("backend calls %d for %d concurrent requests of one key, want 1", c, n)
	}
}

func TestFlussonicBackendProtocol(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	m := startMiddleware(t, func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query()
		mu.Lock()
		seen = append(seen, v.Get("request_type")+"#"+v.Get("request_number"))
		mu.Unlock()
		if v.Get("name") != "a001" || v.Get("proto") != "hls" || (v.Get("ip") != clientIP.String() && v.Get("ip") != otherIP.String()) ||
			v.Get("session_id") == "" || v.Get("user_agent") != "ua" || v.Get("referer") != "https://tv.example.com/" ||
			!strings.Contains(v.Get("qs"), "token=") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch v.Get("token") {
		case "good":
			w.Header().Set("X-AuthDuration", "2")
			w.Header().Set("X-UserId", "u1")
			w.Header().Set("X-Max-Sessions", "1")
		case "moved":
			w.Header().Set("Location", "http://127.0.0.1:1/elsewhere")
			w.WriteHeader(http.StatusFound)
		case "gone":
			w.WriteHeader(http.StatusNotFound)
		default:
			w.WriteHeader(http.StatusForbidden)
		}
	})
	cfg := backendConfig(BackendConfig{Protocol: ProtocolFlussonic, URL: m.URL + "/auth?x=1"})
	cfg.Sessions = SessionsConfig{}
	a := newTestAuthz(t, cfg, nil)
	req := func(tok string, ip string) (*Request, *carrier) {
		r, c := astraReq(tok, "ua")
		r.Referer = []byte("https://tv.example.com/")
		if ip != "" {
			r.ClientIP = otherIP
		}
		return r, c
	}
	r, c := req("good", "")
	d := a.Authorize(r, c, testNow)
	if !d.Allowed() || d.UserID != "u1" || d.MaxSessions != 1 {
		t.Fatalf("allow: %+v", d)
	}
	a.wait()
	if d := a.Authorize(r, c, testNow.Add(time.Second)); !d.Cached {
		t.Fatalf("within X-AuthDuration the decision is cached: %+v", d)
	}
	if n := m.calls.Load(); n != 1 {
		t.Fatalf("calls %d, want 1", n)
	}
	if d := a.Authorize(r, c, testNow.Add(3*time.Second)); !d.Allowed() || d.Cached {
		t.Fatalf("after X-AuthDuration: %+v", d)
	}
	if n := m.calls.Load(); n != 2 {
		t.Fatalf("calls %d, want 2 after X-AuthDuration: 2", n)
	}
	mu.Lock()
	got := strings.Join(seen, ",")
	mu.Unlock()
	if got != "new_session#1,update_session#2" {
		t.Fatalf("request_type#request_number: %s", got)
	}
	// X-Max-Sessions: 1 with X-UserId: the same user from a second device is refused.
	r2, c2 := req("good", "other")
	if d := a.Authorize(r2, c2, testNow.Add(3*time.Second)); d.Status != http.StatusForbidden || d.Reason != ErrSessionLimit.Error() {
		t.Fatalf("second device over X-Max-Sessions: %d %q", d.Status, d.Reason)
	}
	f := func(tok string, status int) {
		t.Helper()
		r, c := req(tok, "")
		if d := a.Authorize(r, c, testNow); d.Status != status {
			t.Errorf("%s: %d %q, want %d", tok, d.Status, d.Reason, status)
		}
	}
	f("moved", http.StatusOK)
	f("gone", http.StatusNotFound)
	f("bad", http.StatusForbidden)
}

func TestBackendTimeout(t *testing.T) {
	// Answers only once the caller gave up: however slow the machine, the timeout is what ends the call.
	m := startMiddleware(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	a := newTestAuthz(t, backendConfig(BackendConfig{Protocol: ProtocolAstra, URL: m.URL, Timeout: 100 * time.Millisecond}), nil)
	r, c := astraReq("slow", "ua")
	d := a.Authorize(r, c, testNow)
	if d.Status != http.StatusForbidden || d.Reason != ErrBackendDown.Error() {
		t.Fatalf("slow backend: %+v", d)
	}
	a.wait()
	a.Authorize(r, c, testNow.Add(time.Second))
	// The calls as the authorizer made them: the middleware may see the timed-out one late, or, on a loaded
	// machine, not at all.
	st := a.Stats().Backends[0]
	if st.Calls != 1 {
		t.Fatalf("calls %d, want 1: the failure is cached for deny_ttl", st.Calls)
	}
	if st.Calls != 1 || st.Timeouts != 1 || st.Errors != 1 || st.Buckets[len(st.Buckets)-1].Count != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBackendDownStaleThenPolicy(t *testing.T) {
	for _, policy := range []string{PolicyDeny, PolicyAllow} {
		t.Run(policy, func(t *testing.T) {
			m := startMiddleware(t, func(w http.ResponseWriter, r *http.Request) {})
			var logs bytes.Buffer
			var mu sync.Mutex
			log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
			cfg := backendConfig(BackendConfig{Protocol: ProtocolAstra, URL: m.URL, CacheFor: time.Second})
			cfg.Groups[0].OnBackendError = policy
			cfg.Groups[0].BackendStale = 10 * time.Second
			a := newTestAuthz(t, cfg, log)
			mu.Lock()
			warned := strings.Contains(logs.String(), "on_backend_error is allow")
			mu.Unlock()
			if warned != (policy == PolicyAllow) {
				t.Fatalf("start-up warning for %s: %v", policy, warned)
			}
			r, c := astraReq("tok", "ua")
			if d := a.Authorize(r, c, testNow); !d.Allowed() {
				t.Fatalf("backend up: %+v", d)
			}
			a.wait()
			m.Close() // the middleware goes down
			// Past cache_for, within backend_stale: the old decision stands in.
			d := a.Authorize(r, c, testNow.Add(2*time.Second))
			if !d.Allowed() {
				t.Fatalf("stale decision not used: %+v", d)
			}
			a.wait()
			// Past the stale window: the policy.
			d = a.Authorize(r, c, testNow.Add(30*time.Second))
			if policy == PolicyDeny && (d.Status != http.StatusForbidden || d.Reason != ErrBackendDown.Error()) {
				t.Fatalf("deny policy: %+v", d)
			}
			if policy == PolicyAllow && (!d.Allowed() || !strings.Contains(d.Reason, "on_backend_error")) {
				t.Fatalf("allow policy: %+v", d)
			}
			// A token never seen before: no stale decision, straight to the policy.
			r2, c2 := astraReq("fresh", "ua")
			if d := a.Authorize(r2, c2, testNow); d.Allowed() != (policy == PolicyAllow) {
				t.Fatalf("new token with the backend down: %+v", d)
			}
			if n := m.calls.Load(); n != 1 {
				t.Fatalf("middleware answered %d calls, want 1 (the one before it went down)", n)
			}
			if st := a.Stats().Backends[0]; st.Calls != 4 || st.Errors != 3 {
				t.Fatalf("backend stats %+v, want 4 calls of which 3 failed", st)
			}
		})
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func TestParallelBackendsFirstAllowWins(t *testing.T) {
	// The first refuses "ok" only when its call is cancelled, which the second's allow does: the second answers
	// once the first has been asked, so both calls are counted and they ran in parallel.
	firstAsked := make(chan struct{}, 1)
	first := startMiddleware(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("token") == "ok" {
			firstAsked <- struct{}{}
			<-r.Context().Done()
		}
		w.WriteHeader(http.StatusForbidden)
	})
	second := startMiddleware(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("token") == "ok" {
			select {
			case <-firstAsked:
			case <-r.Context().Done():
				return
			}
			w.Header().Set("X-Session-Name", "bob")
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	})
	a := newTestAuthz(t, backendConfig(
		BackendConfig{Name: "first", Protocol: ProtocolAstra, URL: first.URL, Timeout: time.Minute},
		BackendConfig{Name: "second", Protocol: ProtocolAstra, URL: second.URL, Timeout: time.Minute},
	), nil)
	r, c := astraReq("ok", "ua")
	if d := a.Authorize(r, c, testNow); !d.Allowed() || d.UserID != "bob" {
		t.Fatalf("only the second allows: %+v", d)
	}
	a.wait()
	if d := a.Authorize(r, c, testNow); !d.Cached {
		t.Fatalf("not cached: %+v", d)
	}
	if first.calls.Load() != 1 || second.calls.Load() != 1 {
		t.Fatalf("calls first %d second %d, want 1 each", first.calls.Load(), second.calls.Load())
	}
	// Both refuse: the first backend's refusal (in config order) stands.
	r2, c2 := astraReq("nope", "ua")
	if d := a.Authorize(r2, c2, testNow); d.Status != http.StatusForbidden {
		t.Fatalf("both refuse: %+v", d)
	}
	// The first is down, the second refuses: a refusal, not a failure.
	first.Close()
	r3, c3 := astraReq("nope2", "ua")
	if d := a.Authorize(r3, c3, testNow); d.Status != http.StatusUnauthorized {
		t.Fatalf("down + refusal: %+v", d)
	}
	st := a.Stats()
	if len(st.Backends) != 2 || st.Backends[1].Allows != 1 || st.Backends[0].Denies != 1 || st.Backends[0].Cancelled != 1 || st.Backends[0].Errors != 1 {
		t.Fatalf("stats %+v", st.Backends)
	}
}
