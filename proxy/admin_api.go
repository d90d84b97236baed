package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/authz"
)

// serveAuthAPI answers the admin API's session and ban endpoints (behind the admin bearer token); it reports
// false for the paths it does not own.
//
//	GET    /api/sessions[?channel=&user=]  open sessions, oldest first
//	DELETE /api/sessions/{id}              kick: the next request of that session gets 403
//	GET    /api/bans                       bans in force
//	POST   /api/bans                       {"ip"|"user"|"token": "...", "ttl": "10m", "reason": "..."}
//	DELETE /api/bans/{id}                  lift a ban
func (s *Server) serveAuthAPI(ctx *fasthttp.RequestCtx, path string) bool {
	method := string(ctx.Method())
	switch {
	case path == "/api/sessions":
		if !allowMethod(ctx, method, fasthttp.MethodGet) {
			break
		}
		s.writeJSON(ctx, s.auth.Sessions(authz.SessionFilter{
			Channel: string(ctx.QueryArgs().Peek("channel")),
			User:    string(ctx.QueryArgs().Peek("user")),
		}))
	case strings.HasPrefix(path, "/api/sessions/"):
		if !allowMethod(ctx, method, fasthttp.MethodDelete) {
			break
		}
		info, err := s.auth.Kick(path[len("/api/sessions/"):], s.now())
		switch {
		case errors.Is(err, authz.ErrNoSession):
			s.fail(ctx, fasthttp.StatusNotFound, "no such session")
		case err != nil:
			s.fail(ctx, fasthttp.StatusConflict, err.Error())
		default:
			s.writeJSON(ctx, info)
		}
	case path == "/api/bans":
		switch method {
		case fasthttp.MethodGet:
			s.writeJSON(ctx, s.auth.Bans(s.now()))
		case fasthttp.MethodPost:
			s.addBan(ctx)
		default:
			allowMethod(ctx, method, "GET, POST")
		}
	case strings.HasPrefix(path, "/api/bans/"):
		if !allowMethod(ctx, method, fasthttp.MethodDelete) {
			break
		}
		if !s.auth.Unban(path[len("/api/bans/"):]) {
			s.fail(ctx, fasthttp.StatusNotFound, "no such ban")
			return true
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	default:
		return false
	}
	return true
}

func allowMethod(ctx *fasthttp.RequestCtx, method, allowed string) bool {
	if method == allowed {
		return true
	}
	ctx.Response.Header.Set("Allow", allowed)
	ctx.Response.ResetBody()
	ctx.SetStatusCode(fasthttp.StatusMethodNotAllowed)
	ctx.SetBodyString("method not allowed\n")
	return false
}

// banBody is the JSON of POST /api/bans.
type banBody struct {
	IP     string `json:"ip"`
	User   string `json:"user"`
	Token  string `json:"token"`
	TTL    string `json:"ttl"` // Go duration ("90s", "2h"); empty: until lifted
	Reason string `json:"reason"`
}

func (s *Server) addBan(ctx *fasthttp.RequestCtx) {
	var b banBody
	dec := json.NewDecoder(strings.NewReader(string(ctx.PostBody())))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		s.fail(ctx, fasthttp.StatusBadRequest, "body must be a JSON ban: "+jsonErr(err))
		return
	}
	r := authz.BanRequest{IP: b.IP, User: b.User, Token: b.Token, Reason: b.Reason}
	if b.TTL != "" {
		d, err := time.ParseDuration(b.TTL)
		if err != nil || d <= 0 {
			s.fail(ctx, fasthttp.StatusBadRequest, "ttl must be a positive duration such as 90s or 2h")
			return
		}
		r.TTL = d
	}
	ban, err := s.auth.Ban(r, s.now())
	switch {
	case errors.Is(err, authz.ErrBanListFull):
		s.fail(ctx, fasthttp.StatusInsufficientStorage, err.Error())
		return
	case err != nil:
		s.fail(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	ctx.SetStatusCode(fasthttp.StatusCreated)
	s.writeJSON(ctx, ban)
}

// jsonErr keeps decoder errors to one line without echoing the body, which may hold a token.
func jsonErr(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "syntax error at byte " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		return "field " + te.Field + " has the wrong type"
	case errors.Is(err, io.EOF):
		return "empty body"
	}
	if strings.HasPrefix(err.Error(), "json: unknown field") {
		return err.Error()
	}
	return "malformed JSON"
}

// AdminStats is /api/stats: the edge's cache and origin figures, viewers per channel and the authorizer's
// counters.
type AdminStats struct {
	EdgeStats
	Viewers map[string]int `json:"viewers"`
	Auth    authz.Stats    `json:"auth"`
}

func (s *Server) adminStats() AdminStats {
	return AdminStats{EdgeStats: s.Stats(), Viewers: s.auth.Viewers(s.now()), Auth: s.auth.Stats()}
}

// writeAuthMetrics appends the authorizer's counters to /metrics in Prometheus text. authz exposes plain
// counters (Stats) rather than depending on a metrics library; this is where they get names.
func (s *Server) writeAuthMetrics(w io.Writer) {
	if s.auth.Disabled() {
		return
	}
	st := s.auth.Stats()
	for _, b := range st.Backends {
		l := `group="` + promLabel(b.Group) + `",backend="` + promLabel(b.Name) + `",protocol="` + b.Protocol + `"`
		fmt.Fprintf(w, "hlsedge_auth_backend_calls_total{%s} %d\n", l, b.Calls)
		for _, r := range []struct {
			name string
			n    uint64
		}{{"allow", b.Allows}, {"deny", b.Denies}, {"error", b.Errors}, {"cancelled", b.Cancelled}} {
			fmt.Fprintf(w, "hlsedge_auth_backend_results_total{%s,result=\"%s\"} %d\n", l, r.name, r.n)
		}
		fmt.Fprintf(w, "hlsedge_auth_backend_errors_total{%s} %d\n", l, b.Errors)
		fmt.Fprintf(w, "hlsedge_auth_backend_timeouts_total{%s} %d\n", l, b.Timeouts)
		for _, bk := range b.Buckets {
			le := "+Inf"
			if bk.LE > 0 {
				le = strconv.FormatFloat(bk.LE, 'g', -1, 64)
			}
			fmt.Fprintf(w, "hlsedge_auth_backend_duration_seconds_bucket{%s,le=\"%s\"} %d\n", l, le, bk.Count)
		}
		fmt.Fprintf(w, "hlsedge_auth_backend_duration_seconds_sum{%s} %g\n", l, b.LatencySeconds)
		fmt.Fprintf(w, "hlsedge_auth_backend_duration_seconds_count{%s} %d\n", l, b.Calls)
	}
	ss := st.Sessions
	fmt.Fprintf(w, "hlsedge_auth_sessions_open %d\n", ss.Open)
	fmt.Fprintf(w, "hlsedge_auth_sessions_opened_total %d\n", ss.Opened)
	fmt.Fprintf(w, "hlsedge_auth_sessions_closed_total %d\n", ss.Closed)
	fmt.Fprintf(w, "hlsedge_auth_sessions_refused_total %d\n", ss.Refused)
	fmt.Fprintf(w, "hlsedge_auth_sessions_untracked_total %d\n", ss.Untracked)
	fmt.Fprintf(w, "hlsedge_auth_session_webhook_events_total{result=\"sent\"} %d\n", ss.WebhookSent)
	fmt.Fprintf(w, "hlsedge_auth_session_webhook_events_total{result=\"dropped\"} %d\n", ss.WebhookDropped)
	fmt.Fprintf(w, "hlsedge_auth_session_webhook_events_total{result=\"failed\"} %d\n", ss.WebhookFailed)
	fmt.Fprintf(w, "hlsedge_auth_bans %d\n", st.Bans)
	fmt.Fprintf(w, "hlsedge_auth_kicks %d\n", st.Kicks)
}

// promLabel escapes a label value for the Prometheus text format.
func promLabel(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}
