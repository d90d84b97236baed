package signaling

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fasthttp/websocket"
)

// Socket.IO v5 over Engine.IO 4: what socket.io-client v3/v4 speaks with its default options, so the
// conference's original front end connects unchanged. The event layer is the same as for the JSON framing; this
// file is the framing, the Engine.IO open and heartbeat, the namespace handshake, acknowledgements and the
// server's disconnect. Both transports are served: a WebSocket from the start, or long polling (polling.go)
// upgraded to a WebSocket as socket.io-client does by default.

// Engine.IO and Socket.IO packet types, as the first bytes of a text frame.
const (
	eioOpen       = '0'
	eioClose      = '1'
	eioPing       = '2'
	eioPong       = '3'
	eioMessage    = '4'
	eioUpgrade    = '5'
	eioNoop       = '6'
	sioConnect    = '0' // after eioMessage
	sioDisconn    = '1'
	sioEvent      = '2'
	sioAck        = '3'
	sioConnectErr = '4'
)

var (
	// ErrEngineIOVersion refuses clients of another Engine.IO protocol: socket.io-client 2.x speaks EIO=3.
	ErrEngineIOVersion = errors.New("socket.io: only Engine.IO protocol 4 (EIO=4: socket.io-client 3.x and 4.x) " +
		"is served; socket.io-client 2.x (EIO=3) must be upgraded")
	// ErrSocketIOTransport refuses a transport other than Engine.IO's polling and websocket.
	ErrSocketIOTransport = errors.New("socket.io: transport must be polling or websocket")
	// ErrSocketIOFrame is a frame that is not a Socket.IO event packet for the main namespace.
	ErrSocketIOFrame = errors.New("frame is not a socket.io event packet (42[\"event\", data]) for namespace /")
)

// evServerDisconnect tells a Socket.IO client why the server is about to disconnect it: Socket.IO's disconnect
// packet carries no reason, and the WebSocket close frame that has one never reaches a polling client.
const evServerDisconnect = "server_disconnect"

// SocketIOCodec frames events as Socket.IO EVENT packets: `42["event",{...}]`.
type SocketIOCodec struct{}

// Decode implements Codec. An acknowledgement id (`42<id>[...]`) is skipped; sioAckID reads it.
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

// sioDisconnectMessage is Socket.IO's DISCONNECT for the main namespace. After it socket.io-client reports "io
// server disconnect" and does not reconnect on its own.
var sioDisconnectMessage = &Message{Raw: []byte{eioMessage, sioDisconn}}

// maxAckDigits keeps an ack id within int64; socket.io-client counts its ids up from 0.
const maxAckDigits = 18

// sioAckID reads the acknowledgement id of an event packet, `42<id>[...]`: the client waits for `43<id>[...]`.
func sioAckID(frame []byte) (uint64, bool) {
	if len(frame) < 3 || frame[0] != eioMessage || frame[1] != sioEvent {
		return 0, false
	}
	var id uint64
	n := 0
	for _, b := range frame[2:] {
		if b < '0' || b > '9' {
			break
		}
		if n++; n > maxAckDigits {
			return 0, false
		}
		id = id*10 + uint64(b-'0')
	}
	return id, n > 0
}

// ackMessage is Socket.IO's ACK for the main namespace, `43<id>[data]`; nil data is an ack without arguments, as
// Flask-SocketIO sends for a handler that returns nothing.
func ackMessage(id uint64, data []byte) *Message {
	b := make([]byte, 0, 24+len(data))
	b = append(b, eioMessage, sioAck)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, '[')
	b = append(b, data...)
	return &Message{Raw: append(b, ']')}
}

// answersJoin reports whether an event the hub sends is the answer to join_waiting_room: the waiting room's
// response, or the grant (or refusal) when the participant is let in, or turned away, at once.
func answersJoin(ev string) bool {
	return ev == evJoinWaitingResponse || strings.HasPrefix(ev, joinRoomPrefix)
}

// maxDeferredAcks bounds the join acks a socket keeps waiting for the hub's answer.
const maxDeferredAcks = 16

// answer sends the reply to the event being handled and, when the client asked for an ack, the ack with the same
// payload, as Flask-SocketIO does: a front end that waits on the ack callback gets what the `*_response` event
// carries.
func (c *conn) answer(m *Message) {
	c.Send(m)
	if c.ackID >= 0 {
		c.Send(ackMessage(uint64(c.ackID), m.Data))
		c.ackID = -1
	}
}

// ackRest acks the event being handled when it asked for an ack and nothing answered it: with the error that
// refused it, or without arguments.
func (c *conn) ackRest() {
	if c.ackID >= 0 {
		c.Send(ackMessage(uint64(c.ackID), c.ackErr))
		c.ackID = -1
	}
	c.ackErr = nil
}

// deferJoinAck hands the ack of a join_waiting_room over to Send, which sends it behind the hub's answer: that
// answer comes through the hub, for a fleet later and from another process. It returns the id, for
// reclaimJoinAck.
func (c *conn) deferJoinAck() (uint64, bool) {
	if c.ackID < 0 {
		return 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.joinAcks) >= maxDeferredAcks {
		return 0, false // answered now, without arguments
	}
	id := uint64(c.ackID)
	c.joinAcks = append(c.joinAcks, id)
	c.ackID = -1
	return id, true
}

// reclaimJoinAck takes a deferred ack back when the hub refused the join, so that the refusal carries it; an
// answer that arrived meanwhile has already sent it.
func (c *conn) reclaimJoinAck(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := slices.Index(c.joinAcks, id); i >= 0 {
		c.joinAcks = slices.Delete(c.joinAcks, i, i+1)
		c.ackID = int64(id)
	}
}

func newSocketIOID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// openPacket is Engine.IO's open packet. The heartbeat it announces is the server's: a ping every PingInterval,
// and the client gives up after PingInterval+pingTimeout without one; the server's own limit on silence stays
// IdleTimeout.
func (s *Server) openPacket(sid string, upgrade bool) []byte {
	cfg := s.conf()
	upgrades := []string{}
	if upgrade {
		upgrades = append(upgrades, "websocket")
	}
	open, _ := json.Marshal(map[string]any{
		"sid":          sid,
		"upgrades":     upgrades,
		"pingInterval": cfg.PingInterval.Milliseconds(),
		"pingTimeout":  (cfg.IdleTimeout - cfg.PingInterval).Milliseconds(),
		"maxPayload":   s.maxPayload(),
	})
	return append([]byte{eioOpen}, open...)
}

// maxPayload is the largest frame, or polling POST body, a client may send.
func (s *Server) maxPayload() int64 {
	if n := s.pollBodyLimit.Load(); n > 0 && n < s.conf().ReadLimit {
		return n
	}
	return s.conf().ReadLimit
}

// sioOpen sends the Engine.IO open packet and waits for the client to connect to the main namespace, which
// socket.io-client does at once. false means the socket is to be closed.
func (c *conn) sioOpen(ws *websocket.Conn) bool {
	c.Send(&Message{Raw: c.s.openPacket(newSocketIOID(), false)})
	_ = ws.SetReadDeadline(time.Now().Add(c.s.conf().HandshakeTimeout))
	for {
		mt, frame, err := ws.ReadMessage()
		if err != nil {
			c.readFailed(err)
			return false
		}
		if mt != websocket.TextMessage {
			frame = nil // not a namespace connect
		}
		if c.sioNamespace(frame) {
			c.nsJoined = true
			return true
		}
		if c.isClosing() {
			c.awaitClose(ws)
			return false
		}
	}
}

// sioNamespace handles one packet of the namespace handshake and reports whether the client is now connected to
// the main namespace. Anything else than a connect costs a strike, as the handshake wait is not rate limited.
func (c *conn) sioNamespace(frame []byte) bool {
	if len(frame) < 2 || frame[0] != eioMessage || frame[1] != sioConnect {
		c.strike("", "socket.io: expected a namespace connect packet (40)")
		return false
	}
	// "40" or "40{auth}" is the main namespace; "40/name,..." another one, which does not exist here. The
	// refusal names it back only when it is a plain short name: a text frame must stay valid UTF-8, and an echo
	// must not be an amplifier.
	if len(frame) > 2 && frame[2] == '/' {
		ns := frame[2:]
		if i := bytes.IndexByte(ns, ','); i >= 0 {
			ns = ns[:i]
		}
		if !plainNamespace(ns) {
			ns = []byte("/")
		}
		c.Send(&Message{Raw: append(append([]byte{eioMessage, sioConnectErr}, ns...), `,{"message":"Invalid namespace"}`...)})
		c.penalize("invalid namespace")
		return false
	}
	c.Send(&Message{Raw: append([]byte{eioMessage, sioConnect}, `{"sid":"`+newSocketIOID()+`"}`...)})
	return true
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
	case eioNoop:
		return true
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
