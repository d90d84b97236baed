package authz

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/playlist"
)

func mintHS(t testing.TB, streams []string, ttl time.Duration, extra ...any) string {
	t.Helper()
	claims := map[string]any{"sub": "user-42", "streams": streams, "exp": testNow.Add(ttl).Unix()}
	for i := 0; i < len(extra); i += 2 {
		claims[extra[i].(string)] = extra[i+1]
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString(hmacSecret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func hsConfig() Config {
	return Config{
		JWT:         jwtConfig(string(hmacSecret)),
		SecureToken: &token.SecureTokenConfig{Secret: stSecret},
		Edge:        EdgeConfig{Secret: edgeSecret},
	}
}

func TestTokenSources(t *testing.T) {
	a := newAuthz(t, hsConfig())
	tok := mintHS(t, []string{"a001"}, time.Hour)
	f := func(name string, c *carrier, status int) {
		t.Helper()
		if d := a.Authorize(req("a001", clientIP), c, testNow); d.Status != status {
			t.Errorf("%s: got %d %q, want %d", name, d.Status, d.Reason, status)
		}
	}
	f("none", &carrier{}, http.StatusUnauthorized)
	f("query", q(tok), http.StatusOK)
	f("cookie", &carrier{cookie: map[string]string{"token": tok}}, http.StatusOK)
	f("bearer", &carrier{header: map[string]string{"Authorization": "Bearer " + tok}}, http.StatusOK)
	f("bearer lower case", &carrier{header: map[string]string{"Authorization": "bearer  " + tok + " "}}, http.StatusOK)
	f("basic is not bearer", &carrier{header: map[string]string{"Authorization": "Basic " + tok}}, http.StatusUnauthorized)
	f("empty query falls through to cookie", &carrier{query: map[string]string{"token": ""}, cookie: map[string]string{"token": tok}}, http.StatusOK)
	f("query wins over a bad cookie", &carrier{query: map[string]string{"token": tok}, cookie: map[string]string{"token": "garbage"}}, http.StatusOK)
	f("too long", q(strings.Repeat("x", 5000)), http.StatusForbidden)

	// A custom order: only the cookie `sess`.
	b := newAuthz(t, Config{JWT: hsConfig().JWT, Edge: EdgeConfig{Secret: edgeSecret}, Sources: []SourceConfig{{Cookie: "sess"}}})
	if d := b.Authorize(req("a001", clientIP), q(tok), testNow); d.Status != http.StatusUnauthorized {
		t.Errorf("query must be ignored when not a source: %d", d.Status)
	}
	if d := b.Authorize(req("a001", clientIP), &carrier{cookie: map[string]string{"sess": tok}}, testNow); !d.Allowed() {
		t.Errorf("cookie sess: %d %q", d.Status, d.Reason)
	}
	if got := b.TokenParams(); !reflect.DeepEqual(got, []string{"token"}) {
		t.Errorf("params %v", got)
	}
	if got := a.TokenParams(); !reflect.DeepEqual(got, []string{"token"}) {
		t.Errorf("params %v", got)
	}
	c := newAuthz(t, Config{JWT: hsConfig().JWT, Edge: EdgeConfig{Secret: edgeSecret}, Sources: []SourceConfig{{Query: "t"}, {Query: "token"}}, ChildParam: "e"})
	if got := c.TokenParams(); !reflect.DeepEqual(got, []string{"t", "token", "e"}) {
		t.Errorf("params %v", got)
	}
}

// The viewer arrives with a JWT on the master playlist; the playlist carries an edge token; segments and child
// playlists verify with the edge token alone, on this channel, from this address, until the JWT's expiry.
func TestEdgeChildTokenFlow(t *testing.T) {
	cfg := hsConfig()
	cfg.Edge.BindIP = true
	a := newAuthz(t, cfg)
	parent := mintHS(t, []string{"a001"}, 30*time.Minute)
	r := req("a001", clientIP)
	d := a.Authorize(r, q(parent), testNow)
	if !d.Allowed() {
		t.Fatalf("parent: %d %q", d.Status, d.Reason)
	}
	cq := string(a.AppendChildQuery([]byte("x&"), r, &d, testNow))
	if !strings.HasPrefix(cq, "x&token=e1.") || strings.Contains(cq, parent) {
		t.Fatalf("child query %q", cq)
	}
	vals, err := url.ParseQuery(strings.TrimPrefix(cq, "x&"))
	if err != nil {
		t.Fatal(err)
	}
	child := vals.Get("token")
	seg := &Request{Path: []byte("/play/a001/113900585_92b9.ts"), Channel: []byte("a001"), ClientIP: clientIP}
	sd := a.Authorize(seg, q(child), testNow.Add(time.Second))
	if !sd.Allowed() || sd.Kind != token.KindEdge || sd.UserID != "user-42" || sd.SessionID != d.SessionID || sd.Expires != d.Expires {
		t.Fatalf("segment with child token: %+v (parent %+v)", sd, d)
	}
	// The child of a child is the same token: its expiry and session stay.
	if got := string(a.AppendChildQuery(nil, seg, &sd, testNow)); got != "token="+child {
		t.Fatalf("grandchild %q", got)
	}
	f := func(name string, r *Request, now time.Time, status int, reason string) {
		t.Helper()
		if d := a.Authorize(r, q(child), now); d.Status != status || !strings.Contains(d.Reason, reason) {
			t.Errorf("%s: got %d %q, want %d %q", name, d.Status, d.Reason, status, reason)
		}
	}
	f("other channel", req("b002", clientIP), testNow, http.StatusForbidden, "edge: token not valid for this channel")
	f("other ip", req("a001", otherIP), testNow, http.StatusForbidden, "edge: token bound to another client ip")
	f("after the parent's expiry", req("a001", clientIP), testNow.Add(30*time.Minute), http.StatusGone, "edge: token expired")

	// The same viewer refreshing the master playlist gets the same session.
	d2 := a.Authorize(r, q(parent), testNow.Add(10*time.Second))
	if d2.SessionID != d.SessionID {
		t.Errorf("session changed across refreshes")
	}
}

func TestEdgeChildNeverOutlivesParentOrCap(t *testing.T) {
	cfg := hsConfig()
	cfg.Edge.MaxTTL = time.Hour
	a := newAuthz(t, cfg)
	f := func(ttl time.Duration, want int64) {
		t.Helper()
		r := req("a001", clientIP)
		d := a.Authorize(r, q(mintHS(t, []string{"a001"}, ttl)), testNow)
		child := strings.TrimPrefix(string(a.AppendChildQuery(nil, r, &d, testNow)), "token=")
		et, err := token.VerifyEdgeToken([]byte(edgeSecret), child, "a001", otherIP, testNow)
		if err != nil {
			t.Fatal(err)
		}
		if et.Expires != want {
			t.Errorf("ttl %v: child expires %d, want %d", ttl, et.Expires-testNow.Unix(), want-testNow.Unix())
		}
		if et.IP.IsValid() {
			t.Errorf("unbound parent gave a bound child")
		}
	}
	f(10*time.Minute, testNow.Add(10*time.Minute).Unix())
	f(48*time.Hour, testNow.Add(time.Hour).Unix())
}

func TestChildTokenBoundWhenParentBound(t *testing.T) {
	a := newAuthz(t, hsConfig())
	r := req("a001", clientIP)
	d := a.Authorize(r, q(mintHS(t, []string{"a001"}, time.Hour, "ip", clientIP.String())), testNow)
	child := strings.TrimPrefix(string(a.AppendChildQuery(nil, r, &d, testNow)), "token=")
	if d := a.Authorize(req("a001", otherIP), q(child), testNow); d.Status != http.StatusForbidden {
		t.Fatalf("child of an ip-bound parent used elsewhere: %d %q", d.Status, d.Reason)
	}
	// securetoken binds the IP too.
	st := mintST(stSecret, "a001")
	d = a.Authorize(r, q(st), testNow)
	child = strings.TrimPrefix(string(a.AppendChildQuery(nil, r, &d, testNow)), "token=")
	if !strings.HasPrefix(child, "e1.") {
		t.Fatalf("edge mode must mint an edge token for securetoken too: %q", child)
	}
	if d := a.Authorize(req("a001", otherIP), q(child), testNow); d.Status != http.StatusForbidden {
		t.Fatalf("child of a securetoken used elsewhere: %d %q", d.Status, d.Reason)
	}
}

func TestSameModeEscapesToken(t *testing.T) {
	cfg := hsConfig()
	cfg.Sources = []SourceConfig{{Cookie: "token"}}
	cfg.Groups = []GroupConfig{{ChildToken: ChildSame}}
	a := newAuthz(t, cfg)
	// A cookie can hold bytes a query cannot; the child query must escape them.
	d := Decision{Status: http.StatusOK, child: string(playlist.AppendQueryEscape(nil, []byte("a b&c=d/é")))}
	if got := string(a.AppendChildQuery(nil, nil, &d, testNow)); got != "token=a%20b%26c%3Dd%2F%C3%A9" {
		t.Fatalf("got %q", got)
	}
	denied := Decision{Status: http.StatusForbidden, child: "x"}
	if got := a.AppendChildQuery([]byte("k"), nil, &denied, testNow); string(got) != "k" {
		t.Fatalf("a refused request must get no child query: %q", got)
	}
}

// The verifier's claims reach the decision, with the session derived for this token, channel and address.
func TestJWTDecisionCarriesClaims(t *testing.T) {
	a := newAuthz(t, hsConfig())
	tok := mintHS(t, []string{"a001"}, time.Hour, "max_sessions", 3, "ip", clientIP.String())
	d := a.Authorize(req("a001", clientIP), q(tok), testNow)
	if !d.Allowed() || d.UserID != "user-42" || d.MaxSessions != 3 || d.Expires != testNow.Add(time.Hour).Unix() || d.Kind != token.KindJWT || d.SessionID == 0 {
		t.Fatalf("decision %+v", d)
	}
}

// In same mode the playlist carries the securetoken unchanged, as Flussonic does.
func TestSecureTokenSameModeChild(t *testing.T) {
	cfg := hsConfig()
	cfg.Groups = []GroupConfig{{Name: "flussonic", ChildToken: ChildSame}}
	a := newAuthz(t, cfg)
	tok := mintST(stSecret, "bbc")
	r := &Request{Path: []byte("/bbc/index.m3u8"), Channel: []byte("bbc"), ClientIP: clientIP}
	d := a.Authorize(r, q(tok), testNow.Add(time.Minute))
	if !d.Allowed() || d.Kind != token.KindSecureToken {
		t.Fatalf("securetoken refused: %d %q", d.Status, d.Reason)
	}
	if q := string(a.AppendChildQuery(nil, r, &d, testNow)); q != "token="+tok {
		t.Fatalf("child query %q", q)
	}
}

func TestGroups(t *testing.T) {
	a := newAuthz(t, Config{
		JWT:         jwtConfig(string(hmacSecret)),
		SecureToken: &token.SecureTokenConfig{Secret: stSecret},
		Edge:        EdgeConfig{Secret: edgeSecret},
		Groups: []GroupConfig{
			{Name: "free", Channels: []string{"free-*"}, Public: true},
			{Name: "premium", Channels: []string{"sport/*", "movies"}, Accept: []string{"jwt"}},
			{Name: "partner", Channels: []string{"p?"}, ChildToken: ChildSame, SecureToken: &token.SecureTokenConfig{Secret: "PARTNERKEY"}},
			{Name: "rest", Channels: []string{"a*"}},
		},
	})
	st := mintST
	f := func(name, ch string, c *carrier, status int, group string) {
		t.Helper()
		d := a.Authorize(req(ch, clientIP), c, testNow)
		if d.Status != status || d.Group != group {
			t.Errorf("%s: got %d %q group %q, want %d %q", name, d.Status, d.Reason, d.Group, status, group)
		}
	}
	f("public", "free-news", &carrier{}, http.StatusOK, "free")
	f("premium jwt", "sport/f1", q(mintHS(t, []string{"sport/*"}, time.Hour)), http.StatusOK, "premium")
	f("premium refuses securetoken", "movies", q(st(stSecret, "movies")), http.StatusForbidden, "premium")
	f("partner own key", "p1", q(st("PARTNERKEY", "p1")), http.StatusOK, "partner")
	f("partner refuses the global key", "p1", q(st(stSecret, "p1")), http.StatusForbidden, "partner")
	f("rest global key", "a001", q(st(stSecret, "a001")), http.StatusOK, "rest")
	f("no group", "zzz", q(st(stSecret, "zzz")), http.StatusForbidden, "")
	d := a.Authorize(req("p1", clientIP), q(st("PARTNERKEY", "p1")), testNow)
	if got := string(a.AppendChildQuery(nil, nil, &d, testNow)); got != "token="+st("PARTNERKEY", "p1") {
		t.Errorf("same mode child %q", got)
	}
}

func TestProtectedAndChannelFromPath(t *testing.T) {
	a := newAuthz(t, Config{JWT: hsConfig().JWT, Edge: EdgeConfig{Secret: edgeSecret}, Protected: []string{"/play/", "/live/"}})
	f := func(path string, want bool) {
		t.Helper()
		if got := a.Protected([]byte(path)); got != want {
			t.Errorf("Protected(%q) = %v", path, got)
		}
	}
	f("/play/a001/index.m3u8", true)
	f("/live/x/1.ts", true)
	f("/healthz", false)
	f("/metrics", false) // outside /play/ and /live/
	f("/other/a/b", false)
	all := newAuthz(t, hsConfig())
	// /metrics is served on the admin listener only: on the public one, a route could send it to the origin.
	if !all.Protected([]byte("/bbc/index.m3u8")) || all.Protected([]byte("/healthz")) || !all.Protected([]byte("/metrics")) {
		t.Error("default protects everything but /healthz")
	}
	tok := mintHS(t, []string{"a001"}, time.Hour)
	g := func(path string, status int) {
		t.Helper()
		d := a.Authorize(&Request{Path: []byte(path), ClientIP: clientIP}, q(tok), testNow)
		if d.Status != status {
			t.Errorf("%s: %d %q", path, d.Status, d.Reason)
		}
	}
	g("/play/a001/index.m3u8", http.StatusOK)
	g("/play/b002/index.m3u8", http.StatusForbidden)
	g("/play/a001", http.StatusForbidden)
	g("/play//x.ts", http.StatusForbidden)
	off := newAuthz(t, Config{Disabled: true})
	if off.Protected([]byte("/play/a/b")) || !off.Authorize(req("a", clientIP), &carrier{}, testNow).Allowed() {
		t.Error("disabled auth must protect nothing")
	}
	if off.ChildParam() != "token" || !reflect.DeepEqual(off.TokenParams(), []string{"token"}) {
		t.Errorf("disabled auth must still name its parameters: %q %v", off.ChildParam(), off.TokenParams())
	}
}

func TestDecisionCache(t *testing.T) {
	a := newAuthz(t, hsConfig())
	tok := mintHS(t, []string{"a001"}, time.Hour)
	r := req("a001", clientIP)
	if d := a.Authorize(r, q(tok), testNow); !d.Allowed() || d.Cached {
		t.Fatalf("first: %+v", d)
	}
	a.cache.c.Wait()
	d := a.Authorize(r, q(tok), testNow)
	if !d.Allowed() || !d.Cached || string(d.Token()) != tok {
		t.Fatalf("second must be a cache hit: %+v", d)
	}
	// The key covers channel and address: neither borrows the other's allow.
	if d := a.Authorize(req("b002", clientIP), q(tok), testNow); d.Allowed() || d.Cached {
		t.Fatalf("other channel: %+v", d)
	}
	if d := a.Authorize(req("a001", otherIP), q(tok), testNow); !d.Allowed() || d.Cached {
		t.Fatalf("other ip (token unbound) must verify afresh: %+v", d)
	}
	// Denials are cached briefly.
	a.cache.c.Wait()
	if d := a.Authorize(req("b002", clientIP), q(tok), testNow.Add(time.Second)); d.Allowed() || !d.Cached {
		t.Fatalf("denial within deny_ttl: %+v", d)
	}
	if d := a.Authorize(req("b002", clientIP), q(tok), testNow.Add(3*time.Second)); d.Allowed() || d.Cached {
		t.Fatalf("denial after deny_ttl: %+v", d)
	}
	// An allow is not reused past the token's expiry (plus the default 30s leeway) even if ristretto holds it.
	if d := a.Authorize(r, q(tok), testNow.Add(time.Hour+30*time.Second)); d.Status != http.StatusGone || d.Cached {
		t.Fatalf("after expiry: %+v", d)
	}
	if raceEnabled {
		return
	}
	c := q(tok)
	a.Authorize(r, c, testNow)
	a.cache.c.Wait()
	if n := testing.AllocsPerRun(200, func() {
		if d := a.Authorize(r, c, testNow); !d.Cached {
			t.Fatal("not cached")
		}
	}); n != 0 {
		t.Fatalf("cache hit allocates %v times", n)
	}
}

func TestCacheDisabled(t *testing.T) {
	cfg := hsConfig()
	cfg.Cache.Disabled = true
	a := newAuthz(t, cfg)
	tok := mintHS(t, []string{"a001"}, time.Hour)
	for i := 0; i < 2; i++ {
		if d := a.Authorize(req("a001", clientIP), q(tok), testNow); !d.Allowed() || d.Cached {
			t.Fatalf("%+v", d)
		}
	}
}

// Many viewers at once, on the cache and the pooled HMAC states: run with -race.
func TestAuthorizeConcurrent(t *testing.T) {
	a := newAuthz(t, hsConfig())
	parent := mintHS(t, []string{"*"}, time.Hour)
	d := a.Authorize(req("a001", clientIP), q(parent), testNow)
	child := strings.TrimPrefix(string(a.AppendChildQuery(nil, nil, &d, testNow)), "token=")
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				tok, ch, want := parent, fmt.Sprintf("ch%d", i%5), http.StatusOK
				switch i % 3 {
				case 1:
					tok, ch = child, "a001"
				case 2:
					tok, ch = child, "b002"
					want = http.StatusForbidden
				}
				if d := a.Authorize(req(ch, clientIP), q(tok), testNow); d.Status != want {
					select {
					case errs <- fmt.Sprintf("goroutine %d request %d: %d %q", g, i, d.Status, d.Reason):
					default:
					}
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// The proxy looks up Referer, Origin and Host only when ReadsPageHeaders says a decision may read them: a group
// with rules or middlewares. Saying false for such a group would turn a domain lock off.
func TestReadsPageHeaders(t *testing.T) {
	f := func(name string, cfg Config, want bool) {
		t.Helper()
		if got := newAuthz(t, cfg).ReadsPageHeaders(); got != want {
			t.Errorf("%s: ReadsPageHeaders %v, want %v", name, got, want)
		}
	}
	f("tokens only", hsConfig(), false)
	domains := hsConfig()
	domains.Groups = []GroupConfig{{Name: "default", Rules: RulesConfig{Domains: []string{"tv.example.com"}}}}
	f("domain lock", domains, true)
	f("middleware", backendConfig(BackendConfig{Protocol: ProtocolAstra, URL: "http://127.0.0.1:1/check"}), true)
}

// A connection's memo answers its last session id without hashing (TestEntrySessionOfIsSessionOf holds its
// answers to the hash).
func TestMemoSessionOfAnswersTheRepeat(t *testing.T) {
	var m Memo
	ip4 := netip.MustParseAddr("192.0.2.7")
	if nilMemo := (*Memo)(nil); nilMemo.sessionOf(&entry{}, 1, ip4, []byte("TV")) != sessionOf(1, ip4, []byte("TV")) {
		t.Error("a request without a memo got another id")
	}
	m.sessionOf(nil, 3, ip4, []byte("TV"))
	m.sid.id ^= 1
	if got := m.sessionOf(nil, 3, ip4, []byte("TV")); got != sessionOf(3, ip4, []byte("TV"))^1 {
		t.Errorf("the connection's last viewer again was hashed: %x", got)
	}
}

// An entry answers its first viewer's session id from a memo, and a connection's memo its last request's;
// whatever either answers must be sessionOf's, for the entry's first viewer and for the others sharing it.
func TestEntrySessionOfIsSessionOf(t *testing.T) {
	e := &entry{}
	var m Memo
	ip4, ip6 := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("2001:db8::7")
	long := strings.Repeat("u", 3*maxSessionUA)
	f := func(base uint64, ip netip.Addr, ua string) {
		t.Helper()
		want := sessionOf(base, ip, []byte(ua))
		if got := e.sessionOf(base, ip, []byte(ua)); got != want {
			t.Errorf("sessionOf(%d, %v, %.20q): entry memo %x, hash %x", base, ip, ua, got, want)
		}
		for range 2 {
			if got := m.sessionOf(e, base, ip, []byte(ua)); got != want {
				t.Errorf("sessionOf(%d, %v, %.20q): connection memo %x, hash %x", base, ip, ua, got, want)
			}
		}
	}
	for range 2 {
		// Each differs from the one before in one thing only: the user agent, the base, the address.
		f(1, ip4, "TV")
		f(1, ip4, "Phone")
		f(2, ip4, "Phone")
		f(2, ip4, "TV")
		f(2, ip6, "TV")
		f(1, ip6, "TV")
		f(1, ip4, long)
		f(1, ip4, long+"x") // differs past the part sessions keep
		var nilEntry *entry
		if nilEntry.sessionOf(1, ip4, []byte("TV")) != sessionOf(1, ip4, []byte("TV")) {
			t.Error("an entry-less decision hashes")
		}
	}
	if m := e.sess.Load(); m == nil || m.ua != "TV" {
		t.Errorf("the memo is the first viewer's: %+v", m)
	}
}
