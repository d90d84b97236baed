package signaling

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// Socket.IO v5 over Engine.IO 4, websocket transport only: what socket.io-client v3/v4 speaks with
// `transports: ["websocket"]`, so the conference's original front end connects unchanged. The event layer is
// the same as for the JSON framing; this file is the framing, the Engine.IO open/heartbeat and the namespace
// handshake. Long polling is not served: an edge holding a socket per viewer has no use for it.

// Engine.IO and Socket.IO packet types, as the first bytes of a text frame.
const (
	eioOpen    = '0'
	eioClose   = '1'
	eioPing    = '2'
	eioPong    = '3'
	eioMessage = '4'
	sioConnect = '0' // after eioMessage
	sioDisconn = '1'
	sioEvent   = '2'
)

var (
	// ErrSocketIOTransport refuses what this endpoint does not serve: Engine.IO 3 clients and long polling.
	ErrSocketIOTransport = errors.New("socket.io: only EIO=4 with transport=websocket is served; set transports: [\"websocket\"] in the client")
	// ErrSocketIOFrame is a frame that is not a Socket.IO event packet for the main namespace.
	ErrSocketIOFrame = errors.New("frame is not a socket.io event packet (42[\"event\", data]) for namespace /")
)

// SocketIOCodec frames events as Socket.IO EVENT packets: `42["event",{...}]`.
type SocketIOCodec struct{}

// Decode implements Codec. An acknowledgement id (`42<id>[...]`) is read and ignored: no event here asks for one.
func (SocketIOCodec) Decode(frame []byte) (string, []byte, error) {
	if len(frame) < 3 || frame[0] != eioMessage || frame[1] != sioEvent {
		return "", nil, ErrSocketIOFrame
	}
	p := frame[2:]
	for len(p) > 0 && p[0] >= '0' && p[0] <= '9' {
		p = p[1:]
	}
	var args []json.RawMessage
	if err := json.Unmarshal(p, &args); err != nil || len(args) == 0 {
		return "", nil, ErrSocketIOFrame
	}
	var ev string
	if err := json.Unmarshal(args[0], &ev); err != nil || ev == "" {
		return "", nil, ErrSocketIOFrame
	}
	if len(args) < 2 {
		return ev, []byte("null"), nil
	}
	return ev, args[1], nil
}

// Encode implements Codec.
func (SocketIOCodec) Encode(dst []byte, event string, data []byte) []byte {
	dst = append(dst, eioMessage, sioEvent, '[')
	dst = appendJSONString(dst, event)
	dst = append(dst, ',')
	dst = append(dst, data...)
	return append(dst, ']')
}

func (SocketIOCodec) slot() int { return 1 }

// sioPingMessage is the Engine.IO heartbeat. It goes through the send queue like any frame, since a text frame
// may not be written while the writer is in the middle of another.
var sioPingMessage = &Message{Raw: []byte{eioPing}}

// checkSocketIOQuery refuses handshakes the endpoint does not serve, before the upgrade.
func checkSocketIOQuery(ctx *fasthttp.RequestCtx) error {
	q := ctx.QueryArgs()
	if string(q.Peek("EIO")) != "4" || string(q.Peek("transport")) != "websocket" {
		return ErrSocketIOTransport
	}
	return nil
}

func newSocketIOID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// sioOpen sends the Engine.IO open packet and waits for the client to connect to the main namespace, which
// socket.io-client does at once. The heartbeat it announces is the server's: a ping every PingInterval, and the
// client gives up after PingInterval+pingTimeout without one; the server's own limit on silence stays
// IdleTimeout. false means the socket is to be closed.
func (c *conn) sioOpen(ws *websocket.Conn) bool {
	cfg := c.s.conf()
	open, _ := json.Marshal(map[string]any{
		"sid":          newSocketIOID(),
		"upgrades":     []string{},
		"pingInterval": cfg.PingInterval.Milliseconds(),
		"pingTimeout":  (cfg.IdleTimeout - cfg.PingInterval).Milliseconds(),
		"maxPayload":   cfg.ReadLimit,
	})
	c.Send(&Message{Raw: append([]byte{eioOpen}, open...)})
	_ = ws.SetReadDeadline(time.Now().Add(cfg.HandshakeTimeout))
	for {
		mt, frame, err := ws.ReadMessage()
		if err != nil {
			c.readFailed(err)
			return false
		}
		if mt != websocket.TextMessage || len(frame) < 2 || frame[0] != eioMessage || frame[1] != sioConnect {
			c.strike("", "socket.io: expected a namespace connect packet (40)")
			if c.isClosing() {
				return false
			}
			continue
		}
		// "40" or "40{auth}" is the main namespace; "40/name,..." another one, which does not exist here. The
		// refusal names it back only when it is a plain short name: a text frame must stay valid UTF-8, and an
		// echo must not be an amplifier. Each one costs a strike, as the handshake wait is not rate limited.
		if len(frame) > 2 && frame[2] == '/' {
			ns := frame[2:]
			if i := bytes.IndexByte(ns, ','); i >= 0 {
				ns = ns[:i]
			}
			if !plainNamespace(ns) {
				ns = []byte("/")
			}
			c.Send(&Message{Raw: append(append([]byte{eioMessage, '4'}, ns...), `,{"message":"Invalid namespace"}`...)})
			c.penalize("invalid namespace")
			if c.isClosing() {
				return false
			}
			continue
		}
		c.Send(&Message{Raw: append([]byte{eioMessage, sioConnect}, `{"sid":"`+newSocketIOID()+`"}`...)})
		return true
	}
}

func plainNamespace(ns []byte) bool {
	if len(ns) > 64 {
		return false
	}
	for _, b := range ns {
		if b < '!' || b > '~' || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

// sioControl handles the Engine.IO and Socket.IO packets that are not events; true when frame was one.
func (c *conn) sioControl(frame []byte) bool {
	if len(frame) == 0 {
		return false
	}
	switch frame[0] {
	case eioPong:
		return true // the read that brought it already moved the idle deadline
	case eioPing: // Engine.IO 3 habit; harmless to answer
		c.Send(&Message{Raw: []byte{eioPong}})
		return true
	case eioClose:
		c.closeWith(websocket.CloseNormalClosure, "client closed")
		return true
	case eioMessage:
		if len(frame) < 2 {
			return false
		}
		switch frame[1] {
		case sioDisconn:
			c.closeWith(websocket.CloseNormalClosure, "client disconnected")
			return true
		case sioConnect:
			return true // already connected
		}
	}
	return false
}
