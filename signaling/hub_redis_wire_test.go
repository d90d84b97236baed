package signaling

import (
	"encoding/json"
	"testing"
)

// frameChecker is a Receiver that checks every message it is handed frames into a well-formed event.
type frameChecker struct {
	t *testing.T
	n int
}

func (f *frameChecker) Deliver(d *Delivery) {
	f.n++
	if d.To == toWaiter {
		f.t.Fatal("a toWaiter delivery reached a node")
	}
	if d.Msg == nil {
		return
	}
	if _, _, err := (JSONCodec{}).Decode(d.Msg.frame(JSONCodec{})); err != nil {
		f.t.Fatalf("frame of %q does not decode: %v", d.Msg.Event, err)
	}
}

// Whatever arrives on a conference's channel either fails to decode or applies without a panic, and every frame
// it makes a node send is a well-formed event.
func FuzzHubEvent(f *testing.F) {
	join := newMessage(joinRoomPrefix+"r", map[string]any{"can_join": true})
	chat := newMessage(evChatMessage, ChatMessage{Text: "hi"})
	for _, ds := range [][]*wireDelivery{
		{decisionDelivery("r", "k1", decision{admitted: true}), leftDelivery("a@x", leftAdmitted, "k1")},
		{newDelivery(ToChat, chat)},
		{{To: ToAll, End: conferenceEndedReason}},
		{{To: toWaiter, Waiter: "k1", Role: RoleNone}, newDelivery(ToModerators, join)},
	} {
		b, err := json.Marshal(&wireEvent{From: "node-b.1", D: ds})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"from":"x","d":[{"to":99}]}`))
	f.Add([]byte(`{"from":"x","d":[{"to":3,"ev":"x","data":{"a":[1,2,{"b":null}]}}]}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		ev, err := decodeWire(p)
		if err != nil {
			return
		}
		fc := &frameChecker{t: t}
		h := &RedisHub{history: 3}
		h.rcv.attach(fc)
		lc := &rconf{hubConf: newHubConf(ConfKey{"r", "c"}, &h.rcv, h.history), h: h, pendingDec: map[string]decision{}}
		lc.shared = lc
		w := &waiter{key: "k1", sessions: []string{"s1"}}
		lc.waiters["k1"], lc.members["s1"] = w, &member{role: RoleWaiting, key: "k1", w: w}
		for _, d := range ev.D {
			lc.applyLocked(d)
		}
		if len(lc.chat.msgs) > 3 {
			t.Fatalf("history ring grew to %d", len(lc.chat.msgs))
		}
	})
}
