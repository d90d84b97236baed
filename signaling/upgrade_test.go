package signaling

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// pipeliningConn sends extra in the same write as the upgrade request, as a client that does not wait for the
// 101 would: the bytes reach the server inside fasthttp's read buffer.
type pipeliningConn struct {
	net.Conn
	extra []byte
}

func (p *pipeliningConn) Write(b []byte) (int, error) {
	if p.extra != nil {
		buf := append(append([]byte(nil), b...), p.extra...)
		p.extra = nil
		if _, err := p.Conn.Write(buf); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return p.Conn.Write(b)
}

// maskedTextFrame is one client-to-server text frame (payload under 126 bytes).
func maskedTextFrame(payload string) []byte {
	key := [4]byte{0x11, 0x22, 0x33, 0x44}
	f := []byte{0x81, 0x80 | byte(len(payload)), key[0], key[1], key[2], key[3]}
	for i := range len(payload) {
		f = append(f, payload[i]^key[i%4])
	}
	return f
}

func TestFrameSentBeforeThe101IsNotLost(t *testing.T) {
	f := func(name string, detach bool) {
		t.Run(name, func(t *testing.T) {
			ts := startServerMode(t, baseConfig(), detach)
			const room, cid = "pipelined", "c-p"
			nc, err := net.DialTimeout("tcp", ts.addr, waitFor)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(waitFor))
			h := http.Header{
				"Origin": {testOrigin},
				"Cookie": {"socket_io_token_" + cid + "=" + mint(t, alice, room, cid)},
			}
			u := &url.URL{Scheme: "ws", Host: ts.addr, Path: "/ws", RawQuery: "room=" + url.QueryEscape(room)}
			pc := &pipeliningConn{Conn: nc, extra: maskedTextFrame(`{"event":"no_such_event","data":{}}`)}
			ws, resp, err := websocket.NewClient(pc, u, h, 1024, 1024)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			_ = resp.Body.Close()
			_ = ws.SetReadDeadline(time.Now().Add(waitFor)) // the handshake cleared the dial's deadline
			var names []string
			for len(names) < 2 {
				_, msg, err := ws.ReadMessage()
				if err != nil {
					t.Fatalf("after %v: %v", names, err)
				}
				var e event
				if err := json.Unmarshal(msg, &e); err != nil {
					t.Fatalf("bad event %q: %v", msg, err)
				}
				names = append(names, e.Event)
				if e.Event == "error" && !strings.Contains(string(e.Data), "no_such_event") {
					t.Fatalf("error event does not name the event it refused: %s", e.Data)
				}
			}
			if names[0] != "connected" || names[1] != "error" {
				t.Fatalf("events = %v, want the `connected` event, then the `error` answering the pipelined frame", names)
			}
		})
	}
	f("detached", true)
	f("on the hijack goroutine", false)
}

func TestDetachedHandshakeRefusals(t *testing.T) {
	ts := startServer(t, baseConfig())
	f := func(mutate func(h http.Header), wantStatus int, wantReason string) {
		t.Helper()
		const room, cid = "refusals", "c-r"
		req, _ := http.NewRequest(http.MethodGet, "http://"+ts.addr+"/ws?room="+room, nil)
		req.Header = http.Header{
			"Origin":                {testOrigin},
			"Cookie":                {"socket_io_token_" + cid + "=" + mint(t, alice, room, cid)},
			"Connection":            {"Upgrade"},
			"Upgrade":               {"websocket"},
			"Sec-Websocket-Version": {"13"},
			"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
		}
		mutate(req.Header)
		resp, err := (&http.Client{Timeout: waitFor}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body [256]byte
		n, _ := resp.Body.Read(body[:])
		if resp.StatusCode != wantStatus || !strings.Contains(string(body[:n]), wantReason) {
			t.Fatalf("status %d %q, want %d containing %q", resp.StatusCode, body[:n], wantStatus, wantReason)
		}
	}
	f(func(h http.Header) { h.Set("Sec-Websocket-Version", "8") }, http.StatusBadRequest, "Sec-WebSocket-Version: 13")
	f(func(h http.Header) { h.Set("Sec-Websocket-Key", "short") }, http.StatusBadRequest, "Sec-WebSocket-Key")
	f(func(h http.Header) { h.Del("Sec-Websocket-Key") }, http.StatusBadRequest, "Sec-WebSocket-Key")
	// A refused handshake must give its place in the limits back.
	if n := ts.sig.Conns(); n != 0 {
		t.Fatalf("%d sockets counted after refusals", n)
	}
}
