package proxy

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
)

// The request path logs what a viewer did wrong or what an origin failed at, one line per request: a dead origin
// under a thousand viewers, or a client hammering with a bad token, would otherwise write a line per request and
// fill the operator's disk. reqLog repeats a message at most logBurst times a second; the first line after a
// quiet spell says how many were left out (suppressed). The access log (log.access) is not limited: every line
// of it is asked for. Errors are never limited.
const logBurst = 20

// limitedHandler passes at most logBurst records per message and second to the handler it wraps.
type limitedHandler struct {
	slog.Handler
	st *logLimits
}

// logLimits is shared by a handler and those WithAttrs and WithGroup derive from it, so that a message counts the
// same wherever it is logged from.
type logLimits struct {
	// now is the clock in unix seconds; nil uses the record's own time, which slog already read.
	now  func() int64
	msgs sync.Map // message -> *logLimit
}

type logLimit struct {
	second     atomic.Int64
	n          atomic.Int64
	suppressed atomic.Int64
}

func newLimitedLogger(l *slog.Logger) *slog.Logger {
	return slog.New(&limitedHandler{Handler: l.Handler(), st: &logLimits{}})
}

func (h *limitedHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		return h.Handler.Handle(ctx, r)
	}
	v, ok := h.st.msgs.Load(r.Message)
	if !ok {
		// The messages are the request path's constants, so the map stays as small as they are few.
		v, _ = h.st.msgs.LoadOrStore(r.Message, &logLimit{})
	}
	lim := v.(*logLimit)
	sec := r.Time.Unix()
	if h.st.now != nil {
		sec = h.st.now()
	}
	if old := lim.second.Load(); sec != old && lim.second.CompareAndSwap(old, sec) {
		lim.n.Store(0)
	}
	if lim.n.Add(1) > logBurst {
		lim.suppressed.Add(1)
		return nil
	}
	if n := lim.suppressed.Swap(0); n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int64("suppressed", n))
	}
	return h.Handler.Handle(ctx, r)
}

func (h *limitedHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &limitedHandler{Handler: h.Handler.WithAttrs(attrs), st: h.st}
}

func (h *limitedHandler) WithGroup(name string) slog.Handler {
	return &limitedHandler{Handler: h.Handler.WithGroup(name), st: h.st}
}
