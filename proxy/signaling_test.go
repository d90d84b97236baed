package proxy

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/signaling"
)

const testSigSecret = "signaling-secret-0123456789abcdef0123"

func confToken(t *testing.T, email, room, contentID string, moderator bool) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"context":    map[string]any{"user": map[string]any{"name": email, "email": email, "id": email}},
		"aud":        "socketio",
		"iss":        "conf-backend",
		"room":       room,
		"content_id": contentID,
		"moderator":  moderator,
		"exp":        time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(testSigSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// withConferences turns signaling on for pages of https://conf.example.com and tokens of the conference backend.
func withConferences(c *Config) {
	c.Signaling = &signaling.Config{
		AllowedOrigins: []string{"https://conf.example.com"},
		JWT:            token.JWTConfig{Secret: testSigSecret, Issuer: "conf-backend"},
	}
}

// dialConference opens the WebSocket at wsURL as email, a moderator or not, of conference 77 from a page of
// origin; tc is the client's TLS config for wss.
func dialConference(t *testing.T, wsURL, email string, moderator bool, origin string, tc *tls.Config) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	h.Set("Origin", origin)
	h.Set("Cookie", "socket_io_token_77="+confToken(t, email, "standup", "77", moderator))
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, TLSClientConfig: tc}
	return d.Dial(wsURL, h)
}

// awaitWaitingGuest has guest join the waiting room and reads mod's events until one names the guest.
func awaitWaitingGuest(t *testing.T, mod, guest *websocket.Conn) {
	t.Helper()
	if err := guest.WriteJSON(map[string]any{"event": "join_waiting_room", "data": map[string]any{"room_name": "standup"}}); err != nil {
		t.Fatal(err)
	}
	mod.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var ev struct {
			Event string          `json:"event"`
			Data  json.RawMessage `json:"data"`
		}
		if err := mod.ReadJSON(&ev); err != nil {
			t.Fatalf("moderator never heard of the guest: %v", err)
		}
		// The moderator's registration and the guest's join race: the guest arrives either as an event or in the
		// list the moderator gets on connect.
		if (ev.Event == "waiting_participant_joined" || ev.Event == "waiting_room_list") &&
			strings.Contains(string(ev.Data), "guest@example.com") {
			return
		}
	}
}

// TestSignalingMountedOnTheEdge checks the wiring: the WebSocket on the public listener, the conference registry
// behind the admin bearer token, and a waiting-room round trip through both.
func TestSignalingMountedOnTheEdge(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(testPlaylist)) })
	base, srv := startEdge(t, func(c *Config) {
		c.Admin.Token = "admin-token"
		withConferences(c)
	}, o.url)
	admin := adminURL(srv)

	req, _ := http.NewRequest(http.MethodPost, admin+"/api/conferences", strings.NewReader(`{"room":"standup","content_id":"77","waiting_room":true}`))
	if resp, err := client.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("conference registry without the admin token: %v %v, want 401", resp, err)
	}
	req, _ = http.NewRequest(http.MethodPost, admin+"/api/conferences", strings.NewReader(`{"room":"standup","content_id":"77","waiting_room":true}`))
	req.Header.Set("Authorization", "Bearer admin-token")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("registering a conference: %d", resp.StatusCode)
	}

	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/ws?room=standup"
	dial := func(email string, moderator bool, origin string) (*websocket.Conn, *http.Response, error) {
		return dialConference(t, wsURL, email, moderator, origin, nil)
	}
	if _, resp, err := dial("eve@example.com", false, "https://evil.example.com"); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("cross-site upgrade: %v, want 403 before the upgrade", err)
	}
	mod, _, err := dial("mod@example.com", true, "https://conf.example.com")
	if err != nil {
		t.Fatal(err)
	}
	defer mod.Close()
	guest, _, err := dial("guest@example.com", false, "https://conf.example.com")
	if err != nil {
		t.Fatal(err)
	}
	defer guest.Close()
	awaitWaitingGuest(t, mod, guest)
	// The Socket.IO endpoint is routed too, long polling included (socket.io-client's default), and announces the
	// upgrade to a WebSocket; a socket.io-client 2.x is told which versions are served.
	if code, _, body := get(t, base+"/socket.io/?EIO=4&transport=polling&room=standup",
		"Cookie", "socket_io_token_77="+confToken(t, "poll@example.com", "standup", "77", false)); code != 200 ||
		!strings.HasPrefix(string(body), "0{") || !strings.Contains(string(body), `"upgrades":["websocket"]`) {
		t.Fatalf("socket.io polling handshake through the edge: %d %s", code, body)
	}
	if code, _, body := get(t, base+"/socket.io/?EIO=3&transport=polling&room=standup"); code != 400 ||
		!strings.Contains(string(body), "EIO=4") {
		t.Fatalf("socket.io-client 2.x through the edge: %d %s", code, body)
	}
	_, _, body := get(t, admin+"/metrics", "Authorization", "Bearer admin-token")
	if !strings.Contains(string(body), "hlsedge_signaling_") {
		t.Fatal("signaling metrics are not on the admin /metrics")
	}
}
