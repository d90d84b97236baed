package proxy

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// A flood of one message writes logBurst lines a second; the first line of the next second counts the rest;
// other messages, errors and a quiet message are not held back by it.
func TestRequestLogRepeatsAMessageAtMostBurstTimesASecond(t *testing.T) {
	var buf bytes.Buffer
	sec := int64(100)
	h := &limitedHandler{Handler: slog.NewTextHandler(&buf, nil), st: &logLimits{now: func() int64 { return sec }}}
	log := slog.New(h).With("node", "a")
	lines := func(msg string) (n int, last string) {
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.Contains(l, "msg=\""+msg+"\"") {
				n, last = n+1, l
			}
		}
		return n, last
	}
	for range 1000 {
		log.Warn("origin error", "status", 502)
	}
	log.Info("request denied")
	for range 30 {
		log.Error("origin error", "status", 500)
	}
	if n, _ := lines("origin error"); n != logBurst+30 {
		t.Fatalf("%d origin error lines in one second, want %d warnings and the 30 errors:\n%s", n, logBurst, buf.String())
	}
	if n, _ := lines("request denied"); n != 1 {
		t.Fatalf("another message was held back by the flood: %d lines", n)
	}
	sec++
	buf.Reset()
	log.Warn("origin error", "status", 502)
	if n, last := lines("origin error"); n != 1 || !strings.Contains(last, "suppressed=980") || !strings.Contains(last, "node=a") {
		t.Fatalf("the next second's first line: %q, want it to count the 980 left out", last)
	}
	log.Warn("origin error", "status", 502)
	if _, last := lines("origin error"); strings.Contains(last, "suppressed") {
		t.Fatalf("the count was given twice: %q", last)
	}
}
