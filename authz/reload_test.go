package authz

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hlsedge/hlsedge/authz/token"
)

var (
	otherSecret = []byte("another-hmac-secret-0123456789abcdef-xyz")
	edgeNew     = "edge-secret-new-0123456789abcdef-012345"
)

// reloader builds each Authorizer of a reload as cmd/hlsedge does: one viewer state for all, the previous
// Authorizer handed on, and the previous one closed once the new one is in use.
type reloader struct {
	t     *testing.T
	state *MemState
	cur   *Authorizer
}

func newReloader(t *testing.T, cfg Config) *reloader {
	t.Helper()
	st, err := NewMemState(cfg, nil, WithoutJanitor())
	if err != nil {
		t.Fatal(err)
	}
	r := &reloader{t: t, state: st}
	r.reload(cfg)
	t.Cleanup(func() { r.cur.Close(); st.Close() })
	return r
}

func (r *reloader) reload(cfg Config) *Authorizer {
	r.t.Helper()
	a, err := New(cfg, nil, WithState(r.state), WithPrevious(r.cur))
	if err != nil {
		r.t.Fatal(err)
	}
	if r.cur != nil {
		r.cur.Close()
	}
	r.cur = a
	return a
}

func (r *reloader) authorize(tok, ch string) Decision {
	d := r.cur.Authorize(req(ch, clientIP), q(tok), testNow)
	if r.cur.cache != nil {
		r.cur.cache.c.Wait()
	}
	return d
}

func mintKID(t *testing.T, key []byte, kid string, streams ...string) string {
	t.Helper()
	tk := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "user-42", "streams": streams, "exp": testNow.Add(time.Hour).Unix()})
	if kid != "" {
		tk.Header["kid"] = kid
	}
	s, err := tk.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func twoKeys(secrets ...token.SecretConfig) Config {
	c := hsConfig()
	c.JWT = &JWTConfig{JWTConfig: token.JWTConfig{Algorithms: []string{"HS256"}, Secrets: secrets}}
	return c
}

// Sessions, bans and cached decisions outlive a reload that keeps the key and the group; a decision made with a
// key the reload removed is dropped and decided anew, and so is one whose group is gone.
func TestReloadKeepsWhatStillHolds(t *testing.T) {
	a1 := token.SecretConfig{KeyID: "a", Secret: string(hmacSecret)}
	b1 := token.SecretConfig{KeyID: "b", Secret: string(otherSecret)}
	r := newReloader(t, twoKeys(a1, b1))
	tokA, tokB := mintKID(t, hmacSecret, "a", "a001"), mintKID(t, otherSecret, "b", "a001")
	for _, tok := range []string{tokA, tokB} {
		if d := r.authorize(tok, "a001"); !d.Allowed() || d.Cached {
			t.Fatalf("before the reload: %+v", d)
		}
	}
	ban, err := r.cur.Ban(BanRequest{IP: otherIP.String()}, testNow)
	if err != nil {
		t.Fatal(err)
	}

	r.reload(twoKeys(a1)) // key b removed; the TTLs change too
	if d := r.authorize(tokA, "a001"); !d.Allowed() || !d.Cached {
		t.Fatalf("a decision under a kept key must survive: %+v", d)
	}
	if d := r.authorize(tokB, "a001"); d.Allowed() || d.Cached {
		t.Fatalf("a decision under a removed key must be dropped: %+v", d)
	}
	if got := r.cur.Sessions(SessionFilter{}); len(got) != 1 || got[0].User != "user-42" {
		t.Fatalf("sessions after the reload: %+v", got)
	}
	if bans := r.cur.Bans(testNow); len(bans) != 1 || bans[0].ID != ban.ID {
		t.Fatalf("bans after the reload: %+v", bans)
	}
	if d := r.cur.Authorize(req("a001", otherIP), q(tokA), testNow); d.Status != http.StatusForbidden {
		t.Fatalf("a ban from before the reload: %+v", d)
	}

	// The only group is renamed: the decision was made under a group that no longer exists.
	c := twoKeys(a1)
	c.Groups = []GroupConfig{{Name: "renamed"}}
	r.reload(c)
	if d := r.authorize(tokA, "a001"); !d.Allowed() || d.Cached || d.Group != "renamed" {
		t.Fatalf("a decision of a removed group must be decided again: %+v", d)
	}
	if d := r.authorize(tokA, "a001"); !d.Allowed() || !d.Cached {
		t.Fatalf("and cached again: %+v", d)
	}
}

// Edge keys rotate as the README says: the new key is added last, then moved first (the edge now mints with it),
// then the old one is removed. A child minted at any step plays at every later step until its key is removed.
func TestReloadRotatesEdgeKeys(t *testing.T) {
	old := token.SecretConfig{KeyID: "e1", Secret: edgeSecret}
	nw := token.SecretConfig{KeyID: "e2", Secret: edgeNew}
	withEdge := func(keys ...token.SecretConfig) Config {
		c := hsConfig()
		c.Edge = EdgeConfig{Secrets: keys}
		return c
	}
	r := newReloader(t, withEdge(old))
	parent := mintHS(t, []string{"a001"}, time.Hour)
	child := func() string {
		t.Helper()
		d := r.authorize(parent, "a001")
		if !d.Allowed() {
			t.Fatalf("parent refused: %+v", d)
		}
		return strings.TrimPrefix(string(r.cur.AppendChildQuery(nil, nil, &d, testNow)), "token=")
	}
	plays := func(step, tok string, want int) {
		t.Helper()
		if d := r.authorize(tok, "a001"); d.Status != want {
			t.Fatalf("%s: %d %q, want %d", step, d.Status, d.Reason, want)
		}
	}
	c1 := child()
	r.reload(withEdge(old, nw))
	plays("new key added", c1, http.StatusOK)
	if c := child(); c != c1 {
		t.Fatal("adding a key last must not change the minting key")
	}
	r.reload(withEdge(nw, old))
	c2 := child()
	if c2 == c1 {
		t.Fatal("moving the new key first must switch minting to it")
	}
	plays("minting switched, old child", c1, http.StatusOK)
	plays("minting switched, new child", c2, http.StatusOK)
	r.reload(withEdge(nw))
	plays("old key removed, new child", c2, http.StatusOK)
	plays("old key removed, old child", c1, http.StatusForbidden)
	if c := child(); c != c2 {
		t.Fatal("the parent's cached decision still carries a child of the removed key")
	}
}

// A reload that switches the decision cache off and on again keeps its entries: the cache is shared, not
// rebuilt, and closing the Authorizers one by one leaves it usable until the last.
func TestReloadCacheOffAndOn(t *testing.T) {
	r := newReloader(t, hsConfig())
	tok := mintHS(t, []string{"a001"}, time.Hour)
	r.authorize(tok, "a001")
	off := hsConfig()
	off.Cache.Disabled = true
	if d := r.authorize(tok, "a001"); !d.Cached {
		t.Fatalf("a second request is a hit: %+v", d)
	}
	r.reload(off)
	if d := r.authorize(tok, "a001"); !d.Allowed() || d.Cached {
		t.Fatalf("cache off: %+v", d)
	}
	on := hsConfig()
	on.Cache.MaxEntries = 5000
	r.reload(on)
	if d := r.authorize(tok, "a001"); !d.Allowed() || !d.Cached {
		t.Fatalf("cache on again: %+v", d)
	}
	if got := r.cur.store.c.MaxCost(); got != 5000 {
		t.Fatalf("max_entries after the reload: %d", got)
	}
}
