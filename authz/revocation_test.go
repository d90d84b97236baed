package authz

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz/token"
)

// childOf is the edge token a playlist allowed by d carries on its child URIs.
func childOf(t *testing.T, a *Authorizer, r *Request, d *Decision) string {
	t.Helper()
	child := strings.TrimPrefix(string(a.AppendChildQuery(nil, r, d, testNow)), "token=")
	if !strings.HasPrefix(child, "e1.") {
		t.Fatalf("no edge child: %q", child)
	}
	return child
}

// A token ban reaches the children minted from the token, which a viewer already playing holds: they carry the
// viewer's token as their root and every revocation check runs against it. A user's token is the case that
// escaped, because its children carried the user in place of the token.
func TestTokenBanReachesChildren(t *testing.T) {
	a := newTestAuthz(t, sessionConfig(0, false), nil)
	parent := mintHS(t, []string{"*"}, time.Hour) // sub user-42
	tv := viewer("a001", clientIP, "TV")
	d := a.Authorize(tv, q(parent), testNow)
	if !d.Allowed() {
		t.Fatal(d.Reason)
	}
	child := childOf(t, a, tv, &d)
	seg := func(ip string, at time.Duration) Decision {
		r := viewer("a001", clientIP, "TV")
		if ip != "" {
			r = viewer("a001", otherIP, "Phone")
		}
		return a.Authorize(r, q(child), testNow.Add(at))
	}
	if d := seg("", time.Second); !d.Allowed() {
		t.Fatalf("child: %+v", d)
	}
	a.wait()
	if d := seg("", 2*time.Second); !d.Allowed() || !d.Cached {
		t.Fatalf("child must be cached before the ban: %+v", d)
	}

	b, err := a.Ban(BanRequest{Token: parent}, testNow.Add(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	refused := func(name string, d Decision) {
		t.Helper()
		if d.Status != http.StatusForbidden || !strings.Contains(d.Reason, ErrBanned.Error()) {
			t.Errorf("%s after the parent's ban: %d %q", name, d.Status, d.Reason)
		}
	}
	refused("cached child", seg("", 4*time.Second))
	refused("child verified afresh", seg("other", 4*time.Second))
	refused("parent", a.Authorize(viewer("a002", clientIP, "TV"), q(parent), testNow.Add(4*time.Second)))
	if ss := a.Sessions(SessionFilter{}); len(ss) != 0 {
		t.Errorf("the ban must close the child's session: %+v", ss)
	}
	if !a.Unban(b.ID) {
		t.Fatal("unban")
	}
	if d := seg("", 5*time.Second); !d.Allowed() {
		t.Fatalf("child after the unban: %+v", d)
	}

	// The operator may name the viewer by a child copied out of a playlist: the ban is the root's, and reaches
	// the parent and its other children.
	d2 := a.Authorize(viewer("a002", clientIP, "TV"), q(parent), testNow.Add(6*time.Second))
	sibling := childOf(t, a, viewer("a002", clientIP, "TV"), &d2)
	b, err = a.Ban(BanRequest{Token: child}, testNow.Add(7*time.Second))
	if err != nil || b.Token != token.FingerprintOf([]byte(parent)).String() {
		t.Fatalf("ban by child: %+v %v, want the parent's fingerprint", b, err)
	}
	refused("parent banned by its child", a.Authorize(viewer("a003", otherIP, "TV"), q(parent), testNow.Add(8*time.Second)))
	refused("sibling child", a.Authorize(viewer("a002", clientIP, "TV"), q(sibling), testNow.Add(8*time.Second)))
}

// A kick reaches the children as well, on their channel, whether the viewer's token has a user or not.
func TestKickReachesChildrenOfTokensWithoutUser(t *testing.T) {
	a := newTestAuthz(t, sessionConfig(0, false), nil)
	st := mintST(stSecret, "a001")
	tv := viewer("a001", clientIP, "TV")
	d := a.Authorize(tv, q(st), testNow)
	child := childOf(t, a, tv, &d)
	ss := a.Sessions(SessionFilter{})
	if len(ss) != 1 {
		t.Fatalf("sessions %+v", ss)
	}
	if _, err := a.Kick(ss[0].ID, testNow.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"parent": st, "child": child} {
		if d := a.Authorize(viewer("a001", clientIP, "TV"), q(tok), testNow.Add(2*time.Second)); d.Status != http.StatusForbidden {
			t.Errorf("%s after the kick: %d %q", name, d.Status, d.Reason)
		}
	}
}

// respellJWT rewrites the unused low bits of the signature's last base64url character: the same credential,
// which verifies, under another text.
func respellJWT(t *testing.T, tok string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	sig := tok[strings.LastIndexByte(tok, '.')+1:]
	unused := map[int]int{2: 4, 3: 2}[len(sig)%4]
	if unused == 0 {
		t.Fatalf("signature of %d characters has no unused bits", len(sig))
	}
	i := strings.IndexByte(alphabet, tok[len(tok)-1])
	return tok[:len(tok)-1] + string(alphabet[i^(1<<unused-1)])
}

// One credential is one identity however it is spelled: a respelling verifies, so it must meet the same bans,
// kicks and session limits, and count as the same session.
func TestRespelledTokenIsTheSameViewer(t *testing.T) {
	a := newTestAuthz(t, sessionConfig(1, false), nil)
	lower := mintST(stSecret, "a001")
	upper := strings.ToUpper(lower[:40]) + lower[40:]
	tv := viewer("a001", clientIP, "TV")
	d1 := a.Authorize(tv, q(lower), testNow)
	d2 := a.Authorize(viewer("a001", clientIP, "TV"), q(upper), testNow.Add(time.Second))
	if !d1.Allowed() || !d2.Allowed() {
		t.Fatalf("both spellings verify: %q %q", d1.Reason, d2.Reason)
	}
	if d1.Owner != d2.Owner || d1.SessionID != d2.SessionID {
		t.Errorf("one credential, two viewers: owner %q/%q session %x/%x", d1.Owner, d2.Owner, d1.SessionID, d2.SessionID)
	}
	if ss := a.Sessions(SessionFilter{}); len(ss) != 1 || ss[0].Requests != 2 {
		t.Errorf("a respelling counts as a new session: %+v", ss)
	}
	if d := a.Authorize(viewer("a001", otherIP, "Phone"), q(upper), testNow.Add(2*time.Second)); d.Status != http.StatusForbidden {
		t.Errorf("a respelling escapes max_per_user 1 on a second device: %d %q", d.Status, d.Reason)
	}

	// Bans by either spelling refuse the other, cached or not.
	a.wait()
	if _, err := a.Ban(BanRequest{Token: lower}, testNow.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	if d := a.Authorize(viewer("a001", clientIP, "TV"), q(upper), testNow.Add(4*time.Second)); d.Status != http.StatusForbidden {
		t.Errorf("the upper-case spelling escapes the ban: %d %q", d.Status, d.Reason)
	}

	jwtTok := mintHS(t, []string{"*"}, time.Hour, "sub", nil)
	if _, err := a.Ban(BanRequest{Token: jwtTok}, testNow); err != nil {
		t.Fatal(err)
	}
	respelled := respellJWT(t, jwtTok)
	if d := a.Authorize(viewer("a002", otherIP, "TV"), q(respelled), testNow.Add(time.Second)); d.Status != http.StatusForbidden || !strings.Contains(d.Reason, "banned") {
		t.Errorf("a respelled JWT escapes the ban: %d %q", d.Status, d.Reason)
	}
}

// A respelled token kicked under its other spelling stays kicked.
func TestRespelledTokenStaysKicked(t *testing.T) {
	a := newTestAuthz(t, sessionConfig(0, false), nil)
	tok := mintHS(t, []string{"*"}, time.Hour, "sub", nil)
	if d := a.Authorize(viewer("a001", clientIP, "TV"), q(tok), testNow); !d.Allowed() {
		t.Fatal(d.Reason)
	}
	ss := a.Sessions(SessionFilter{})
	if len(ss) != 1 {
		t.Fatalf("sessions %+v", ss)
	}
	if _, err := a.Kick(ss[0].ID, testNow); err != nil {
		t.Fatal(err)
	}
	if d := a.Authorize(viewer("a001", otherIP, "Phone"), q(respellJWT(t, tok)), testNow.Add(time.Second)); d.Status != http.StatusForbidden {
		t.Errorf("a respelling escapes the kick: %d %q", d.Status, d.Reason)
	}
}
