package signaling

import (
	"testing"
	"time"
)

func FuzzJSONCodecDecode(f *testing.F) {
	f.Add([]byte(`{"event":"chat_message","data":{"text":"hi"}}`))
	f.Add([]byte(`{"event":"join_waiting_room"}`))
	f.Add([]byte(`{"event":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, data, err := JSONCodec{}.Decode(b)
		if err != nil {
			return
		}
		if ev == "" || len(data) == 0 {
			t.Fatalf("decoded %q %q without error", ev, data)
		}
		// What decodes re-encodes into a frame that decodes to the same event.
		ev2, _, err := JSONCodec{}.Decode(JSONCodec{}.Encode(nil, ev, data))
		if err != nil || ev2 != ev {
			t.Fatalf("round trip of %q: %q %v", ev, ev2, err)
		}
	})
}

func FuzzVerifyToken(f *testing.F) {
	cfg := baseConfig()
	cfg.SetDefaults()
	v, err := newVerifier(&cfg.JWT, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(v.close)
	f.Add(mint(f, alice, "r", "c"))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		g, err := v.verify(tok, time.Now())
		if err == nil && (g == nil || g.Room == "" || g.Expires.IsZero()) {
			t.Fatalf("accepted token without room or expiry: %+v", g)
		}
	})
}
