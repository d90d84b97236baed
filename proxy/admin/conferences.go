package admin

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/valyala/fasthttp"
)

// conferences serves signaling's conference registry (GET lists, POST announces, DELETE ends). Signaling answers
// it as a fasthttp handler, the form its own test server and the bench's standalone signaling server mount; here
// the request is handed over in a fasthttp.RequestCtx and the answer copied back, which is cheap at the rate a
// conference backend calls it.
func (s *Server) conferences() http.HandlerFunc {
	logger := fasthttpLogger{s.log}
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				s.fail(w, r, http.StatusRequestEntityTooLarge, "body too large")
				return
			}
			s.fail(w, r, http.StatusBadRequest, "reading body", "err", err)
			return
		}
		var req fasthttp.Request
		req.Header.SetMethod(r.Method)
		req.SetRequestURI(r.URL.RequestURI())
		req.Header.SetContentType(r.Header.Get("Content-Type"))
		req.SetBody(body)
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, nil, logger)
		s.sig.ServeConferencesAPI(&ctx)
		h := w.Header()
		for k, v := range ctx.Response.Header.All() {
			if string(k) != fasthttp.HeaderContentLength {
				h.Add(string(k), string(v))
			}
		}
		w.WriteHeader(ctx.Response.StatusCode())
		w.Write(ctx.Response.Body())
	}
}

// fasthttpLogger sends fasthttp's messages to the operator's log.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn("admin: conference api", "msg", fmt.Sprintf(format, args...))
}
