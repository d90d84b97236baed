package signaling

import (
	"encoding/json"
	"errors"
	"sync/atomic"
)

// Codec is the wire framing: how events travel inside WebSocket frames. The event layer (hub, events) only sees
// event names and JSON data, so the JSON framing and Socket.IO v5's (`42["event",{...}]` after the Engine.IO
// handshake) share conferences, waiting rooms and chat.
type Codec interface {
	// Decode splits one text frame into the event name and its raw JSON data ("null" when absent).
	Decode(frame []byte) (event string, data []byte, err error)
	// Encode appends the frame carrying one event to dst.
	Encode(dst []byte, event string, data []byte) []byte
	// slot indexes Message's per-codec frame cache.
	slot() int
}

// maxCodecs is the size of Message's frame cache: JSON and Socket.IO.
const maxCodecs = 2

// ErrFrame is returned for a frame the codec cannot read.
var ErrFrame = errors.New("frame is not an {\"event\", \"data\"} JSON object")

// JSONCodec frames events as `{"event": "...", "data": {...}}` text frames.
type JSONCodec struct{}

type jsonFrame struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// Decode implements Codec.
func (JSONCodec) Decode(frame []byte) (string, []byte, error) {
	var f jsonFrame
	if err := json.Unmarshal(frame, &f); err != nil || f.Event == "" {
		return "", nil, ErrFrame
	}
	if len(f.Data) == 0 {
		f.Data = json.RawMessage("null")
	}
	return f.Event, f.Data, nil
}

// Encode implements Codec.
func (JSONCodec) Encode(dst []byte, event string, data []byte) []byte {
	dst = append(dst, `{"event":`...)
	dst = appendJSONString(dst, event)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}

func (JSONCodec) slot() int { return 0 }

// appendJSONString quotes s as JSON. strconv.AppendQuote is not JSON: it writes \x01 for control characters.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == '"' || c == '\\' || c >= 0x7f {
			b, _ := json.Marshal(s) // slow path: escapes, and U+2028/9 for script contexts
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// Message is one outgoing event. A fan-out builds it once; each codec frames it once, lazily, and every
// recipient's writer sends the same bytes, so delivering to a thousand sockets allocates nothing per socket.
type Message struct {
	Event string
	Data  []byte // a JSON value
	// Raw, when set, is the whole frame, sent as it is whatever the codec: Engine.IO's open and heartbeat
	// packets, which are not events.
	Raw []byte

	frames [maxCodecs]atomic.Pointer[[]byte]
}

// newMessage marshals data; the event layer's payloads are plain structs and maps, which always marshal.
func newMessage(event string, data any) *Message {
	b, err := json.Marshal(data)
	if err != nil {
		b = []byte("null")
	}
	return &Message{Event: event, Data: b}
}

// frame returns the message framed by c. Two writers racing on the first call both build it; either result is
// the same bytes, and the frames are never mutated after.
func (m *Message) frame(c Codec) []byte {
	if m.Raw != nil {
		return m.Raw
	}
	p := &m.frames[c.slot()]
	if f := p.Load(); f != nil {
		return *f
	}
	f := c.Encode(make([]byte, 0, len(m.Event)+len(m.Data)+24), m.Event, m.Data)
	p.Store(&f)
	return f
}
