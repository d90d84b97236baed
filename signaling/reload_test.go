package signaling

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hlsedge/hlsedge/authz/token"
)

const otherSecret = "another-signaling-secret-0123456789abcdef"

func signKID(t *testing.T, secret, kid string, c jwt.MapClaims) string {
	t.Helper()
	tk := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tk.Header["kid"] = kid
	s, err := tk.SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func keysConfig(maxChat int, keys ...token.SecretConfig) Config {
	c := baseConfig()
	c.JWT = token.JWTConfig{Secrets: keys, Issuer: testIss}
	c.MaxChatLength = maxChat
	return c
}

// A reload rotates the conference keys and changes limits without closing a socket: open sockets follow the new
// limits from their next message, new upgrades are checked with the new keys, and a config that fails to build
// leaves the running one in place.
func TestReloadKeepsSocketsAndRotatesKeys(t *testing.T) {
	old := token.SecretConfig{KeyID: "old", Secret: testSecret}
	nw := token.SecretConfig{KeyID: "new", Secret: otherSecret}
	ts := startServer(t, keysConfig(0, old))
	const room, cid = "reload room", "c-r"
	exp := time.Now().Add(time.Hour)
	dialKID := func(u user, secret, kid string) (*client, int, string) {
		t.Helper()
		return ts.dial(room, withCookie("socket_io_token_"+cid, signKID(t, secret, kid, tokenClaimsFor(u, room, cid, exp))))
	}
	m, st, body := dialKID(mod, testSecret, "old")
	if m == nil {
		t.Fatalf("moderator: %d %s", st, body)
	}
	m.expect("connected")
	a, st, body := dialKID(alice, testSecret, "old")
	if a == nil {
		t.Fatalf("alice: %d %s", st, body)
	}
	a.expect("connected")
	a.send("join_waiting_room", map[string]any{})
	a.expect("join_waiting_room_response")

	// Add the new key; shorten chat messages.
	if err := ts.sig.Reload(keysConfig(5, old, nw)); err != nil {
		t.Fatal(err)
	}
	a.send("chat_message", map[string]any{"text": "longer than five"})
	if e := a.expect("error"); !strings.Contains(string(e.Data), errLongChat.Error()) {
		t.Fatalf("chat over the reloaded limit: %s", e.Data)
	}
	b, st, body := dialKID(bob, otherSecret, "new")
	if b == nil {
		t.Fatalf("a token of the added key: %d %s", st, body)
	}
	b.expect("connected")

	// Remove the old key: sockets opened with it stay; new upgrades with it are refused.
	if err := ts.sig.Reload(keysConfig(5, nw)); err != nil {
		t.Fatal(err)
	}
	if _, st, body := dialKID(carol, testSecret, "old"); st != http.StatusUnauthorized || !strings.Contains(body, token.ErrUnknownKey.Error()) {
		t.Fatalf("a token of the removed key: %d %s, want 401", st, body)
	}
	a.send("chat_message", map[string]any{"text": "hi"})
	if e := m.expect("chat_message"); e.field("text") != "hi" {
		t.Fatalf("chat after the reloads: %s", e.Data)
	}

	// A config that fails keeps the running one.
	bad := keysConfig(5, nw)
	bad.JWT.Secrets = []token.SecretConfig{{KeyID: "x", SecretFile: "/nonexistent/signaling.key"}}
	if err := ts.sig.Reload(bad); err == nil || !strings.Contains(err.Error(), "'signaling.jwt.secrets[0].secret_file' must be readable") {
		t.Fatalf("a reload with an unreadable key file: %v", err)
	}
	if c, st, body := dialKID(carol, otherSecret, "new"); c == nil {
		t.Fatalf("after the failed reload: %d %s", st, body)
	}
	for _, c := range []*client{m, a, b} {
		select {
		case <-c.done:
			t.Fatalf("a socket was closed by the reloads: %v", c.closeErr())
		default:
		}
	}
	if got := HubFields(keysConfig(5, nw), func() Config { c := keysConfig(5, nw); c.ChatHistory = 3; return c }()); len(got) != 1 || got[0] != "signaling.chat_history" {
		t.Fatalf("HubFields: %v", got)
	}
}
