package authz

import (
	"net/http"
	"testing"
	"time"
)

// A new Authorizer built around the state of the one it replaces (a reload) keeps its sessions, bans and
// kicks, and closing the old one leaves the state in use.
func TestAuthorizerSwapKeepsViewerState(t *testing.T) {
	cfg := sessionConfig(1, false)
	st, err := NewMemState(cfg, nil, WithoutJanitor())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	old := newTestAuthz(t, cfg, nil, WithState(st))
	tok := q(mintHS(t, []string{"*"}, time.Hour))
	tv := viewer("a001", clientIP, "TV")
	if d := old.Authorize(tv, tok, testNow); !d.Allowed() {
		t.Fatalf("first request: %+v", d)
	}
	b, err := old.Ban(BanRequest{IP: otherIP.String()}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	old.Close()

	next := newTestAuthz(t, cfg, nil, WithState(st))
	if d := next.Authorize(tv, tok, testNow.Add(time.Second)); !d.Allowed() {
		t.Fatalf("the open session's next request: %+v", d)
	}
	if ss := next.Sessions(SessionFilter{}); len(ss) != 1 || ss[0].Requests != 2 {
		t.Fatalf("sessions after the swap %+v", ss)
	}
	// The user's limit of one still counts the session opened before the swap.
	if d := next.Authorize(viewer("a001", clientIP, "Phone"), tok, testNow.Add(time.Second)); d.Status != http.StatusForbidden {
		t.Fatalf("second device after the swap: %+v", d)
	}
	if d := next.Authorize(viewer("a001", otherIP, "TV"), tok, testNow.Add(time.Second)); d.Status != http.StatusForbidden || d.Reason != ErrBanned.Error() {
		t.Fatalf("ban made before the swap: %+v", d)
	}
	if bans := next.Bans(testNow); len(bans) != 1 || bans[0].ID != b.ID {
		t.Fatalf("bans after the swap %+v", bans)
	}
}
