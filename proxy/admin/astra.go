package admin

import (
	"io"
	"net/http"
	"net/netip"
	"net/url"

	"github.com/hlsedge/hlsedge/authz"
)

// astraAuth is GET /auth/astra: Astra's "HTTP Request" backend protocol answered with hlsedge's verifiers and
// rules, so an operator who keeps serving from Astra can point its backend at the edge. Astra sends the viewer's
// query string and describes the viewer in X-Real-IP, X-Real-Path, X-Real-UA, X-Real-Host and X-Channel-ID; the
// answer is 200 (with X-Session-Name, the user) or 401/403.
//
// It lives on the admin listener, not the public one: those headers are the caller's word about someone else, to
// be believed only from Astra on the operator's network, which is where the admin listener is. It is open because
// Astra cannot send the admin token.
func (s *Server) astraAuth(w http.ResponseWriter, r *http.Request) {
	h := r.Header
	ip, err := netip.ParseAddr(h.Get("X-Real-IP"))
	if err != nil {
		ip = netip.Addr{}
	}
	path := []byte(h.Get("X-Real-Path"))
	req := authz.Request{
		Path:      path,
		ClientIP:  ip,
		UserAgent: []byte(h.Get("X-Real-UA")),
		Host:      []byte(h.Get("X-Real-Host")),
		Referer:   []byte(r.Referer()),
		RawQuery:  []byte(r.URL.RawQuery),
		// The channel comes from the viewer's path through the edge's own routes, as for a request to the edge;
		// X-Channel-ID (Astra's channel id) is the fallback when the path is not one the edge serves.
		Channel: s.edge.Channel(path, []byte(h.Get("X-Channel-ID"))),
		// Astra asks once per session and keeps its own; idle-timeout sessions here would close at once.
		SkipSession: true,
	}
	d := s.authorizer().Authorize(&req, &requestCarrier{r: r, query: r.URL.Query()}, s.now())
	if d.Allowed() {
		if d.UserID != "" {
			w.Header().Set("X-Session-Name", d.UserID)
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
		return
	}
	// Astra knows 401 and 403 only; an expired token (410) or an unknown channel is a refusal all the same.
	status := http.StatusForbidden
	if d.Status == http.StatusUnauthorized {
		status = d.Status
	}
	s.fail(w, r, status, d.Reason, "group", d.Group, "viewer_ip", ip.String(), "viewer_path", string(path))
}

// requestCarrier lets authz read the token sources of Astra's request: its query is the viewer's.
type requestCarrier struct {
	r     *http.Request
	query url.Values
}

func (c *requestCarrier) QueryArg(name string) []byte { return []byte(c.query.Get(name)) }
func (c *requestCarrier) Header(name string) []byte   { return []byte(c.r.Header.Get(name)) }

func (c *requestCarrier) Cookie(name string) []byte {
	ck, err := c.r.Cookie(name)
	if err != nil {
		return nil
	}
	return []byte(ck.Value)
}
