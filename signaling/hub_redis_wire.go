package signaling

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// What a RedisHub puts in Redis and on a conference's channel. Everything here is decoded defensively: another
// member's bug, an older version or a stray PUBLISH must never crash a node; what does not decode is counted
// and dropped.

// toWaiter addresses the sessions a node holds for one waiting participant (wireDelivery.Waiter): only the
// node holding them knows their session IDs. It never reaches a Receiver: the hub turns it into ToSessions.
const toWaiter Audience = 16

// wireEvent is one message on a conference run's channel: deliveries every node applies in order to the
// sessions it holds.
type wireEvent struct {
	// From is the publishing hub (its holder name); it applied the deliveries already and skips its own echo.
	From string          `json:"from"`
	D    []*wireDelivery `json:"d"`
}

// wireDelivery is a Delivery as it travels between nodes, plus the state change that goes with it.
type wireDelivery struct {
	To     Audience `json:"to"`
	Waiter string   `json:"w,omitempty"` // for toWaiter: the participant key
	Role   Role     `json:"role,omitempty"`
	Event  string   `json:"ev,omitempty"`
	// Data is the event's JSON data, sent as it is to clients.
	Data json.RawMessage `json:"data,omitempty"`
	End  string          `json:"end,omitempty"`
	// Decided, with a Waiter, is a decision every node remembers for the run, so that a reconnect is answered
	// at once.
	Decided *wireDecision `json:"dec,omitempty"`
	// Gone is a participant taken out of the waiting room: nodes keeping their place through the grace period
	// stop.
	Gone string `json:"gone,omitempty"`

	msg *Message // built once: by the publisher, or on the first use after decoding
}

// wireDecision is a decision as stored in Redis and sent with deliveries.
type wireDecision struct {
	Admitted bool   `json:"admitted"`
	Reason   string `json:"reason,omitempty"`
}

// maxWireDeliveries bounds one event; publishers split larger batches (admitting a whole waiting room).
const maxWireDeliveries = 512

var errWire = errors.New("malformed hub event")

// newDelivery returns a delivery carrying msg (may be nil).
func newDelivery(to Audience, msg *Message) *wireDelivery {
	d := &wireDelivery{To: to, msg: msg}
	if msg != nil {
		d.Event, d.Data = msg.Event, msg.Data
	}
	return d
}

func (d *wireDelivery) message() *Message {
	if d.msg == nil && d.Event != "" {
		d.msg = &Message{Event: d.Event, Data: d.Data}
	}
	return d.msg
}

func decodeWire(p []byte) (*wireEvent, error) {
	var ev wireEvent
	if err := json.Unmarshal(p, &ev); err != nil {
		return nil, fmt.Errorf("%w: %w", errWire, err)
	}
	if ev.From == "" || len(ev.D) == 0 || len(ev.D) > maxWireDeliveries {
		return nil, fmt.Errorf("%w: no sender or %d deliveries", errWire, len(ev.D))
	}
	for _, d := range ev.D {
		if err := d.check(); err != nil {
			return nil, err
		}
	}
	return &ev, nil
}

func (d *wireDelivery) check() error {
	switch {
	case d == nil:
		return fmt.Errorf("%w: null delivery", errWire)
	case d.To != ToModerators && d.To != ToChat && d.To != ToAll && d.To != toWaiter:
		return fmt.Errorf("%w: audience %d", errWire, d.To)
	case d.To == toWaiter && d.Waiter == "":
		return fmt.Errorf("%w: no waiter", errWire)
	case d.Role > RoleRejected:
		return fmt.Errorf("%w: role %d", errWire, d.Role)
	case len(d.Event) > 64 || (d.Event == "") != (len(d.Data) == 0):
		return fmt.Errorf("%w: event without data or data without event", errWire)
	case len(d.End) > 120: // a close frame's reason must fit in 123 bytes
		return fmt.Errorf("%w: end reason too long", errWire)
	}
	return nil
}

// participantKey is what Redis knows a participant by: a fingerprint of their identity key, so that user ids
// and emails stay out of key and field names, and every node computes the same one.
func participantKey(id *Identity) string {
	sum := sha256.Sum256([]byte("hlsedge participant\x00" + id.key()))
	return hex.EncodeToString(sum[:16])
}

func (d decision) wire() *wireDecision { return &wireDecision{Admitted: d.admitted, Reason: d.reason} }

func (w *wireDecision) decision() decision { return decision{admitted: w.Admitted, reason: w.Reason} }

func encodeDecision(d decision) []byte {
	b, _ := json.Marshal(d.wire())
	return b
}

func decodeDecision(b []byte) (decision, error) {
	var w wireDecision
	if err := json.Unmarshal(b, &w); err != nil {
		return decision{}, fmt.Errorf("decoding decision: %w", err)
	}
	return w.decision(), nil
}

func decodeConference(b []byte) (Conference, error) {
	var c Conference
	if err := json.Unmarshal(b, &c); err != nil || c.Room == "" {
		return c, fmt.Errorf("decoding conference: %w", errors.Join(err, errWire))
	}
	return c, nil
}

func decodeParticipant(b []byte) (Participant, error) {
	var p Participant
	if err := json.Unmarshal(b, &p); err != nil || p.Email == "" {
		return p, fmt.Errorf("decoding waiting entry: %w", errors.Join(err, errWire))
	}
	return p, nil
}
