package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/internal/fleet"
)

// The fleet-wide views. Every node announces its figures and its most recently active sessions (a bounded
// sample: announcements are at most 64 KiB) every few seconds with a Reporter; /api/sessions and /api/stats
// of any node merge those with its own, with a node column. A node that stops announcing drops out by itself.

const (
	// reportEvery is how often a node announces itself; an announcement lapses after reportTTL, so a node that
	// died leaves the views within that.
	reportEvery = 3 * time.Second
	reportTTL   = 3*reportEvery + time.Second
	// reportBudget bounds the sessions' part of an announcement, below fleet's 64 KiB.
	reportBudget = 56 << 10
	// fleetTimeout bounds reading the fleet's announcements for one admin request.
	fleetTimeout = 2 * time.Second
)

// nodeReport is what a node announces about itself.
type nodeReport struct {
	Degraded bool                `json:"degraded"`
	Viewers  map[string]int      `json:"viewers"`
	Sessions nodeSessions        `json:"sessions"`
	Auth     nodeAuth            `json:"auth"`
	Edge     nodeEdge            `json:"edge"`
	List     []authz.SessionInfo `json:"list"`
}

type nodeSessions struct {
	Open int64 `json:"open"`
	// Omitted counts the open sessions left out of List to keep the announcement small.
	Omitted int `json:"omitted"`
}

type nodeAuth struct {
	Bans    int    `json:"bans"`
	Kicks   int    `json:"kicks"`
	Refused uint64 `json:"refused"`
}

type nodeEdge struct {
	CacheHits   uint64 `json:"cache_hits"`
	CacheMisses uint64 `json:"cache_misses"`
	CacheBytes  int64  `json:"cache_bytes"`
}

// Reporter announces this node to the fleet, for the other nodes' admin views. It runs whether or not this
// node has an admin listener of its own.
type Reporter struct {
	fc   *fleet.Client
	auth func() *authz.Authorizer
	edge Edge
	log  *slog.Logger
	now  func() time.Time
}

// NewReporter returns a Reporter of the node's authorizer and viewer listener on fc; auth returns the
// authorizer in force, which a reload replaces.
func NewReporter(fc *fleet.Client, auth func() *authz.Authorizer, edge Edge, log *slog.Logger) *Reporter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reporter{fc: fc, auth: auth, edge: edge, log: log, now: time.Now}
}

// Run announces at once and then every few seconds until ctx ends; then it takes the node out of the views.
func (r *Reporter) Run(ctx context.Context) {
	t := time.NewTicker(reportEvery)
	defer t.Stop()
	for {
		if err := r.Announce(ctx); err != nil && ctx.Err() == nil {
			r.log.Debug("admin: announcing this node to the fleet", "err", err)
		}
		select {
		case <-ctx.Done():
			lctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = r.fc.Leave(lctx)
			cancel()
			return
		case <-t.C:
		}
	}
}

// Announce sends one announcement now.
func (r *Reporter) Announce(ctx context.Context) error {
	now := r.now()
	info, err := json.Marshal(r.report(now))
	if err != nil {
		return err
	}
	return r.fc.Announce(ctx, info, reportTTL, now)
}

// report gathers the node's figures and as many of its sessions, most recently active first, as the budget
// allows.
func (r *Reporter) report(now time.Time) nodeReport {
	auth := r.auth()
	st := auth.Stats()
	es := r.edge.Stats()
	rep := nodeReport{
		Degraded: r.fc.Degraded(),
		Viewers:  auth.Viewers(now),
		Sessions: nodeSessions{Open: st.Sessions.Open},
		Auth:     nodeAuth{Bans: st.Bans, Kicks: st.Kicks, Refused: st.Sessions.Refused},
		Edge:     nodeEdge{CacheHits: es.CacheHits, CacheMisses: es.CacheMisses, CacheBytes: es.CacheBytes},
	}
	ss := auth.Sessions(authz.SessionFilter{})
	slices.SortFunc(ss, func(a, b authz.SessionInfo) int { return b.LastSeen.Compare(a.LastSeen) })
	size := 0
	for i, s := range ss {
		b, err := json.Marshal(s)
		if err != nil || size+len(b)+1 > reportBudget {
			rep.Sessions.Omitted = len(ss) - i
			break
		}
		size += len(b) + 1
		rep.List = append(rep.List, s)
	}
	return rep
}

// FleetSession is a session with the node that holds it, as /api/sessions lists them with Redis on.
type FleetSession struct {
	Node string `json:"node"`
	authz.SessionInfo
}

// FleetStats is the fleet part of /api/stats.
type FleetStats struct {
	fleet.Health
	// Viewers are every node's active sessions per channel, summed.
	Viewers map[string]int `json:"viewers"`
	// Nodes has one row per node that announced itself, this one included, by name.
	Nodes []NodeStats `json:"nodes"`
}

// NodeStats is one node's row.
type NodeStats struct {
	Node         string `json:"node"`
	Degraded     bool   `json:"degraded"`
	Viewers      int    `json:"viewers"`
	SessionsOpen int64  `json:"sessions_open"`
	Bans         int    `json:"bans"`
	Kicks        int    `json:"kicks"`
	Refused      uint64 `json:"sessions_refused"`
	CacheHits    uint64 `json:"cache_hits"`
	CacheMisses  uint64 `json:"cache_misses"`
	CacheBytes   int64  `json:"cache_bytes"`
}

// others reads what the other nodes announced; ok is false when the fleet could not be read, and the views
// then show this node alone (and say so).
func (s *Server) others(r *http.Request, now time.Time) (map[string]nodeReport, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), fleetTimeout)
	defer cancel()
	nodes, err := s.fleet.Nodes(ctx, now)
	if err != nil {
		s.log.Warn("admin: reading the fleet's nodes", "err", err)
		return nil, false
	}
	out := make(map[string]nodeReport, len(nodes))
	for _, n := range nodes {
		if n.Node == s.node {
			continue
		}
		var rep nodeReport
		if err := json.Unmarshal(n.Info, &rep); err != nil {
			s.log.Warn("admin: a node's announcement does not decode", "node", n.Node, "err", err)
			continue
		}
		out[n.Node] = rep
	}
	return out, true
}

// fleetSessions is /api/sessions with Redis on: this node's sessions, and those the others announced, with the
// node that holds each. X-Hlsedge-Sessions-Omitted counts the sessions other nodes left out of their
// announcements; X-Hlsedge-Fleet: degraded says that only this node's are listed.
func (s *Server) fleetSessions(w http.ResponseWriter, r *http.Request, f authz.SessionFilter) {
	now := s.now()
	out := []FleetSession{}
	for _, x := range s.authorizer().Sessions(f) {
		out = append(out, FleetSession{Node: s.node, SessionInfo: x})
	}
	others, ok := s.others(r, now)
	if !ok {
		w.Header().Set("X-Hlsedge-Fleet", "degraded")
	}
	omitted := 0
	for node, rep := range others {
		omitted += rep.Sessions.Omitted
		for _, x := range rep.List {
			if f.Channel != "" && x.Channel != f.Channel || f.User != "" && x.User != f.User && x.Token != f.User {
				continue
			}
			out = append(out, FleetSession{Node: node, SessionInfo: x})
		}
	}
	if omitted > 0 {
		w.Header().Set("X-Hlsedge-Sessions-Omitted", strconv.Itoa(omitted))
	}
	slices.SortFunc(out, func(a, b FleetSession) int {
		if c := a.Opened.Compare(b.Opened); c != 0 {
			return c
		}
		return strings.Compare(a.Node, b.Node)
	})
	s.writeJSON(w, r, http.StatusOK, out)
}

// fleetStats is the fleet part of /api/stats: one row per node, this one from live figures.
func (s *Server) fleetStats(r *http.Request, own Stats) *FleetStats {
	now := s.now()
	fs := &FleetStats{Health: s.fleet.Health(), Viewers: map[string]int{}}
	self := NodeStats{
		Node: s.node, Degraded: fs.Degraded, SessionsOpen: own.Auth.Sessions.Open, Bans: own.Auth.Bans, Kicks: own.Auth.Kicks,
		Refused: own.Auth.Sessions.Refused, CacheHits: own.CacheHits, CacheMisses: own.CacheMisses, CacheBytes: own.CacheBytes,
	}
	for ch, n := range own.Viewers {
		self.Viewers += n
		fs.Viewers[ch] += n
	}
	fs.Nodes = append(fs.Nodes, self)
	others, _ := s.others(r, now)
	for node, rep := range others {
		row := NodeStats{
			Node: node, Degraded: rep.Degraded, SessionsOpen: rep.Sessions.Open, Bans: rep.Auth.Bans, Kicks: rep.Auth.Kicks,
			Refused: rep.Auth.Refused, CacheHits: rep.Edge.CacheHits, CacheMisses: rep.Edge.CacheMisses, CacheBytes: rep.Edge.CacheBytes,
		}
		for ch, n := range rep.Viewers {
			row.Viewers += n
			fs.Viewers[ch] += n
		}
		fs.Nodes = append(fs.Nodes, row)
	}
	slices.SortFunc(fs.Nodes, func(a, b NodeStats) int { return strings.Compare(a.Node, b.Node) })
	return fs
}
