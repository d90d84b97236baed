package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/authz/redisstate"
)

// The admin API's session and ban endpoints:
//
//	GET    /api/sessions[?channel=&user=]  open sessions, oldest first
//	DELETE /api/sessions/{id}              kick: the next request of that session gets 403
//	GET    /api/bans                       bans in force
//	POST   /api/bans                       {"ip"|"user"|"token": "...", "ttl": "10m", "reason": "...", "force": false}
//	DELETE /api/bans/{id}                  lift a ban
//	GET    /api/stats                      cache, origins, viewers per channel, the authorizer's counters
//
// With Redis on, /api/sessions lists every node's sessions with a "node" field, DELETE /api/sessions/{id}
// closes a session whichever node holds it, and /api/stats adds "fleet": its health and a row per node.

func (s *Server) sessions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := authz.SessionFilter{Channel: q.Get("channel"), User: q.Get("user")}
	if s.fleet != nil {
		s.fleetSessions(w, r, f)
		return
	}
	s.writeJSON(w, r, http.StatusOK, s.authorizer().Sessions(f))
}

// kick closes a session wherever it is: with Redis on, a session another node holds is closed by that node.
func (s *Server) kick(w http.ResponseWriter, r *http.Request) {
	info, err := s.authorizer().Kick(r.PathValue("id"), s.now())
	switch {
	case errors.Is(err, authz.ErrNoSession):
		s.fail(w, r, http.StatusNotFound, "no such session")
	case errors.Is(err, redisstate.ErrFleetUnavailable):
		s.fail(w, r, http.StatusServiceUnavailable, err.Error())
	case err != nil:
		s.fail(w, r, http.StatusConflict, err.Error())
	default:
		s.writeJSON(w, r, http.StatusOK, info)
	}
}

func (s *Server) bans(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, r, http.StatusOK, s.authorizer().Bans(s.now()))
}

func (s *Server) unban(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !s.authorizer().Unban(id) {
		s.fail(w, r, http.StatusNotFound, "no such ban")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// banBody is the JSON of POST /api/bans.
type banBody struct {
	IP     string `json:"ip"`
	User   string `json:"user"`
	Token  string `json:"token"`
	TTL    string `json:"ttl"` // Go duration ("90s", "2h"); empty: until lifted
	Reason string `json:"reason"`
	// Force takes an IP ban wider than 'admin.min_ban_prefix_v4'/'_v6', up to every address.
	Force bool `json:"force"`
}

func (s *Server) addBan(w http.ResponseWriter, r *http.Request) {
	var b banBody
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.fail(w, r, http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		s.fail(w, r, http.StatusBadRequest, "body must be a JSON ban: "+jsonErr(err))
		return
	}
	if why := s.tooBroad(b.IP); why != "" && !b.Force {
		s.fail(w, r, http.StatusBadRequest, why)
		return
	}
	req := authz.BanRequest{IP: b.IP, User: b.User, Token: b.Token, Reason: b.Reason}
	if b.TTL != "" {
		d, err := time.ParseDuration(b.TTL)
		if err != nil || d <= 0 {
			s.fail(w, r, http.StatusBadRequest, "ttl must be a positive duration such as 90s or 2h")
			return
		}
		req.TTL = d
	}
	ban, err := s.authorizer().Ban(req, s.now())
	switch {
	case errors.Is(err, authz.ErrBanListFull):
		s.fail(w, r, http.StatusInsufficientStorage, err.Error())
		return
	case err != nil:
		s.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if b.Force {
		// The authorizer logs every ban; this says that a too-broad one was meant.
		s.log.Warn("admin: broad ban forced", "id", ban.ID, "ip", ban.IP)
	}
	s.writeJSON(w, r, http.StatusCreated, ban)
}

// tooBroad says why an IP ban needs "force": true: it covers every address of its family (0.0.0.0/0, ::/0), or
// more than the configured minimum prefix allows. It is "" for a narrower ban, a single address, or something
// that is no prefix at all (the authorizer refuses that with its own reason).
func (s *Server) tooBroad(ip string) string {
	p, err := netip.ParsePrefix(ip)
	if err != nil {
		return ""
	}
	a, bits := p.Addr(), p.Bits()
	if a.Is4In6() {
		// ::ffff:0:0/96 is all of IPv4, which the authorizer bans as 0.0.0.0/0.
		a, bits = a.Unmap(), bits-96
	}
	min, field := s.conf().MinBanPrefixV6, "admin.min_ban_prefix_v6"
	if a.Is4() {
		min, field = s.conf().MinBanPrefixV4, "admin.min_ban_prefix_v4"
	}
	switch {
	case bits <= 0:
		return fmt.Sprintf("ip %s bans every viewer; send \"force\": true to mean it", ip)
	case bits < min:
		return fmt.Sprintf("ip %s is wider than /%d ('%s'); send \"force\": true to mean it", ip, min, field)
	}
	return ""
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

// Stats is /api/stats: the edge's cache and origin figures, viewers per channel and the authorizer's counters,
// and with Redis on every node's.
type Stats struct {
	// Node is this edge's name.
	Node string `json:"node,omitempty"`
	EdgeStats
	Viewers map[string]int `json:"viewers"`
	Auth    authz.Stats    `json:"auth"`
	// Fleet is the fleet's health and one row per node; absent for a single edge.
	Fleet *FleetStats `json:"fleet,omitempty"`
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	st := Stats{Node: s.node, EdgeStats: s.edge.Stats(), Viewers: s.authorizer().Viewers(s.now()), Auth: s.authorizer().Stats()}
	if s.fleet != nil {
		st.Fleet = s.fleetStats(r, st)
	}
	s.writeJSON(w, r, http.StatusOK, st)
}
