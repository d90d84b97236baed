package authz

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/hlsedge/hlsedge/authz/internal/glob"
	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/internal/flight"
)

// Authorizer decides requests. It is built once from the config and is safe for concurrent use.
type Authorizer struct {
	log        *slog.Logger
	disabled   bool
	protected  []string
	sources    []source
	childParam string
	params     []string
	maxToken   int
	cache      *decisionCache // nil when the cache is disabled
	store      *decisionStore // the cache's entries, shared with the Authorizers of earlier and later reloads
	epoch      uint64         // this Authorizer's place in a line of reloads
	edge       *token.EdgeSigner
	edgeMaxTTL int64 // seconds
	edgeBindIP bool
	segTargets int64 // segment_ttl_targets; 0: segment tokens live edgeMaxTTL
	segMin     time.Duration
	vodMargin  time.Duration
	denyTTL    time.Duration
	groups     []*group
	// pageHeaders tells that some group has rules or middlewares, the only readers of a request's Referer,
	// Origin and Host (ReadsPageHeaders).
	pageHeaders bool
	state       ViewerState // nil when authorization is disabled
	// sessions is false with sessions.disabled: a request then builds no Viewer for Track.
	sessions bool
	flights  flight.Group[flightKey, Decision]
	closers  []func()
	// counts tells a Flussonic middleware how many are watching (clients.go).
	counts clientCounts
}

// Option changes how New (or NewMemState) builds its viewer state.
type Option func(*options)

type options struct {
	clock func() time.Time
	state ViewerState
	prev  *Authorizer
}

func buildOptions(opts []Option) options {
	o := options{clock: time.Now}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// WithoutJanitor leaves idle sessions and expired bans to explicit Sweep calls, for tests that move time; the
// janitor otherwise sweeps on the wall clock (requests bring their own time).
func WithoutJanitor() Option { return func(o *options) { o.clock = nil } }

// WithState builds the Authorizer around existing viewer state, whose sessions, bans and kicks it takes over:
// build a MemState with NewMemState and hand it to each Authorizer of a reload. The caller keeps the state and
// closes it after the last Authorizer using it; WithoutJanitor then applies to nothing.
func WithState(s ViewerState) Option { return func(o *options) { o.state = s } }

type sourceKind uint8

const (
	srcQuery sourceKind = iota
	srcCookie
	srcBearer
)

type source struct {
	kind sourceKind
	name string
}

// group is one channel group with its verifiers, rules and middlewares.
type group struct {
	name     string
	channels []string
	public   bool
	accept   [token.KindEdge + 1]bool
	same     bool
	jwt      *token.AccessVerifier
	st       *token.SecureTokenVerifier
	// rules are the allow/deny lists, run on every request before the decision cache: they read what the cache
	// key leaves out (user agent, referer), so their outcome is never cached. nil when the group has none.
	rules        *ruleSet
	backends     []*backendClient
	failOpen     bool
	defaultAllow bool
	stale        time.Duration
	// key is what the decisions of the group's middlewares are cached on (backend_key.go).
	key keyParts
	// expiredStatus is the status of an expired token: 410, or 403 as Flussonic answers.
	expiredStatus int
}

// New builds the verifiers, keys, rules, backends and decision cache, and the in-memory viewer state unless
// WithState hands it one. With a JWKS URL it starts a background refresh, and with its own viewer state a
// janitor, that Close stops.
func New(cfg Config, log *slog.Logger, opts ...Option) (*Authorizer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.SetDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	a := &Authorizer{log: log, disabled: cfg.Disabled, denyTTL: cfg.Cache.DenyTTL}
	a.protected = cfg.Protected
	a.childParam = cfg.ChildParam
	a.maxToken = cfg.MaxTokenBytes
	a.edgeMaxTTL = int64(cfg.Edge.MaxTTL / time.Second)
	a.edgeBindIP = cfg.Edge.BindIP
	a.segTargets = int64(*cfg.Edge.SegmentTTLTargets)
	a.segMin = cfg.Edge.SegmentTTLMin
	a.vodMargin = cfg.Edge.VODTTLMargin
	seen := map[string]bool{}
	for _, s := range cfg.Sources {
		switch {
		case s.Query != "":
			a.sources = append(a.sources, source{srcQuery, s.Query})
			if !seen[s.Query] {
				seen[s.Query] = true
				a.params = append(a.params, s.Query)
			}
		case s.Cookie != "":
			a.sources = append(a.sources, source{srcCookie, s.Cookie})
		default:
			a.sources = append(a.sources, source{kind: srcBearer})
		}
	}
	if !seen[a.childParam] {
		a.params = append(a.params, a.childParam)
	}
	if cfg.Disabled {
		// The parameter names stay meaningful: a viewer's token must still never reach the origin.
		log.Warn("authz: authorization is disabled; every path is served without a token")
		return a, nil
	}

	keys, err := cfg.Edge.Keys()
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		for _, g := range cfg.Groups {
			if !g.Public && g.ChildToken == ChildEdge {
				log.Warn("authz: auth.edge.secret is empty; using a random key, so child links break on restart and across edge nodes")
				break
			}
		}
	}
	if a.edge, err = token.NewEdgeSignerKeys(keys); err != nil {
		return nil, err
	}

	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()
	jwts := map[*JWTConfig]*token.AccessVerifier{}
	sts := map[*token.SecureTokenConfig]*token.SecureTokenVerifier{}
	for i := range cfg.Groups {
		gc := &cfg.Groups[i]
		g := &group{name: gc.Name, channels: gc.Channels, public: gc.Public, same: gc.ChildToken == ChildSame}
		for _, k := range gc.Accept {
			g.accept[token.ParseKind(k)] = true
		}
		if gc.JWT != nil && g.accept[token.KindJWT] {
			if g.jwt = jwts[gc.JWT]; g.jwt == nil {
				v, err := token.NewAccessVerifier(&gc.JWT.JWTConfig, &gc.JWT.AccessConfig, log)
				if err != nil {
					return nil, fmt.Errorf("'auth.groups[%d]' (%s) jwt: %w", i, gc.Name, err)
				}
				a.closers = append(a.closers, v.Close)
				jwts[gc.JWT], g.jwt = v, v
			}
		}
		if gc.SecureToken != nil && g.accept[token.KindSecureToken] {
			if g.st = sts[gc.SecureToken]; g.st == nil {
				v, err := token.NewSecureTokenVerifier(gc.SecureToken)
				if err != nil {
					return nil, fmt.Errorf("'auth.groups[%d]' (%s) securetoken: %w", i, gc.Name, err)
				}
				sts[gc.SecureToken], g.st = v, v
			}
		}
		g.rules = buildRules(&gc.Rules)
		g.failOpen = gc.OnBackendError == PolicyAllow
		g.defaultAllow = gc.Default == PolicyAllow
		g.stale = gc.BackendStale
		g.expiredStatus = gc.ExpiredStatus
		g.key, _ = parseBackendKey(gc.BackendKey, len(gc.Backends) > 0, "") // validated above
		for _, bc := range gc.Backends {
			b := newBackendClient(bc)
			a.closers = append(a.closers, b.close)
			g.backends = append(g.backends, b)
		}
		if len(g.backends) > 0 && g.failOpen {
			log.Warn("authz: on_backend_error is allow: when every backend fails, viewers are served without a decision (Astra's behaviour)", "group", g.name)
		}
		if g.defaultAllow && !g.public {
			log.Warn("authz: default is allow: requests without a token are served unless a rule refuses them", "group", g.name)
		}
		a.groups = append(a.groups, g)
		a.pageHeaders = a.pageHeaders || g.rules != nil || len(g.backends) > 0
	}
	if err := a.takeCache(cfg.Cache, o.prev); err != nil {
		return nil, fmt.Errorf("'auth.cache': %w", err)
	}
	a.sessions = !cfg.Sessions.Disabled
	a.state = o.state
	if a.state == nil {
		ms := newMemState(&cfg, log, o.clock)
		a.closers = append(a.closers, ms.Close)
		a.state = ms
	}
	a.counts.exact, _ = a.state.(ClientCounter)
	ok = true
	return a, nil
}

// Close stops background work (key refreshes, and the janitor and webhook of the viewer state New built) and
// releases the cache. A state handed in WithState stays open.
func (a *Authorizer) Close() {
	for _, c := range a.closers {
		c()
	}
	a.closers = nil
	if a.store != nil {
		a.store.release()
		a.store = nil
	}
}

// ReadsPageHeaders reports whether a decision may read Request.Referer, Origin or Host: only rules and
// middlewares do, so that without them the caller need not look those headers up on every request.
func (a *Authorizer) ReadsPageHeaders() bool { return a.pageHeaders }

// Disabled reports whether authorization is off.
func (a *Authorizer) Disabled() bool { return a.disabled }

// Protected reports whether a path needs a token. /healthz never does: the edge answers it itself. /metrics
// lives on the admin listener only, so on the public one it is a path like any other.
func (a *Authorizer) Protected(path []byte) bool {
	if a.disabled || string(path) == "/healthz" {
		return false
	}
	for _, p := range a.protected {
		if len(path) >= len(p) && string(path[:len(p)]) == p {
			return true
		}
	}
	return false
}

// TokenParams lists the query parameters that are the edge's: the proxy strips them before the origin and out of
// cache keys, and the playlist rewriter replaces them in child URIs.
func (a *Authorizer) TokenParams() []string { return append([]string(nil), a.params...) }

// ChildParam is the query parameter AppendChildQuery writes.
func (a *Authorizer) ChildParam() string { return a.childParam }

// extract returns the token from the first configured source that has one.
func (a *Authorizer) extract(c Carrier) []byte {
	for _, s := range a.sources {
		var v []byte
		switch s.kind {
		case srcQuery:
			v = c.QueryArg(s.name)
		case srcCookie:
			v = c.Cookie(s.name)
		case srcBearer:
			v, _ = token.Bearer(c.Header("Authorization"))
		}
		if len(v) > 0 {
			return v
		}
	}
	return nil
}

func (a *Authorizer) groupFor(ch []byte) *group {
	for _, g := range a.groups {
		for _, p := range g.channels {
			if glob.Match(p, ch) {
				return g
			}
		}
	}
	return nil
}

// channelFromPath takes the first segment after the longest protected prefix: /play/{channel}/... for Astra,
// /{stream}/... for Flussonic.
func (a *Authorizer) channelFromPath(path []byte) []byte {
	best := -1
	for _, p := range a.protected {
		if len(path) >= len(p) && string(path[:len(p)]) == p && len(p) > best {
			best = len(p)
		}
	}
	if best < 0 {
		return nil
	}
	rest := path[best:]
	for i, c := range rest {
		if c == '/' {
			if i == 0 || i > token.MaxChannelBytes {
				return nil
			}
			return rest[:i]
		}
	}
	// A bare /{channel} is not an HLS resource.
	return nil
}
