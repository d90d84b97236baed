package authz

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"
)

// Carrier is where a request's token may be: the proxy implements it over fasthttp's parsed request without
// copying. Each method returns nil when the item is absent; the bytes are only read during Authorize.
type Carrier interface {
	// QueryArg returns the decoded value of a query parameter.
	QueryArg(name string) []byte
	// Cookie returns the value of a request cookie.
	Cookie(name string) []byte
	// Header returns the value of a request header.
	Header(name string) []byte
}

// Request describes what is asked and by whom. Byte slices may point into the server's request buffers: the
// Authorizer copies whatever it keeps.
type Request struct {
	// Path is the raw request path, without the query.
	Path []byte
	// Channel is the channel or stream name taken from the path by the route; when empty, it is the first path
	// segment after the longest matching protected prefix.
	Channel []byte
	// ClientIP is the viewer's address (after trusted-proxy handling).
	ClientIP netip.Addr
	// UserAgent, Referer, Origin, Host and RawQuery feed the rules and the middleware backends.
	UserAgent, Referer, Origin, Host, RawQuery []byte
	// SkipSession leaves the request out of session tracking, for callers that track sessions themselves
	// (Astra asking /auth/astra once per session).
	SkipSession bool
}

// Decision is the answer for one request. Allowed decisions carry what the verifier learned about the viewer.
type Decision struct {
	// Status is 200 when allowed; 401 without a token, 410 for an authentic but expired token, 403 otherwise.
	Status int
	// Reason is one line for the viewer and the logs. It never holds a token, a claim value or a secret.
	Reason string
	// Kind is the token's kind (none when no token was checked).
	Kind TokenKind
	// Group is the name of the channel group that decided.
	Group string
	// UserID is the token's user (JWT `sub`, edge token user), empty when unknown.
	UserID string
	// SessionID is stable for one token on one channel from one address, and is kept in child edge tokens.
	SessionID uint64
	// Expires is the token's expiry in unix seconds; 0 when it has none.
	Expires int64
	// MaxSessions is the token's (or backend's) concurrent-session limit; 0 when it sets none.
	MaxSessions int
	// Owner is whom session limits count: the user, or for a token without one its fingerprint (`~` and 16
	// hex digits). Empty for requests allowed by a rule or the group default, which open no session.
	Owner string
	// Cached tells that the decision came from the decision cache.
	Cached bool

	token  []byte   // the incoming token, request memory: valid during the handler only
	child  string   // query value child URIs carry, already escaped
	pass   bool     // children carry the incoming token as it came (allowed by a rule)
	fp     uint64   // fingerprint of the token, or of the parent of an edge token; 0: unknown
	unique bool     // the backend said X-Unique: the user's newest session closes the others
	sess   *session // the session this request was counted in
}

// Allowed reports whether the request may be served.
func (d Decision) Allowed() bool { return d.Status == http.StatusOK }

// Token returns the incoming token; it points into request memory and is valid only until the handler returns.
func (d Decision) Token() []byte { return d.token }

// Authorizer decides requests. It is built once from the config and is safe for concurrent use.
type Authorizer struct {
	log        *slog.Logger
	disabled   bool
	protected  []string
	sources    []source
	childParam string
	params     []string
	maxToken   int
	cache      *decisionCache
	edge       *edgeSigner
	edgeMaxTTL int64 // seconds
	edgeBindIP bool
	denyTTL    time.Duration
	groups     []*group
	closers    []func()

	bans     *banState
	sessions *sessionTable // nil when sessions are disabled
	flights  flightGroup
	clock    func() time.Time
	stop     chan struct{}
	done     chan struct{}
}

// Option changes how New builds an Authorizer.
type Option func(*Authorizer)

// WithClock sets the clock of the background work (idle sessions, expired bans); requests bring their own time.
func WithClock(now func() time.Time) Option { return func(a *Authorizer) { a.clock = now } }

// WithoutJanitor leaves idle sessions and expired bans to explicit Sweep calls; for tests that move time.
func WithoutJanitor() Option { return func(a *Authorizer) { a.clock = nil } }

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

// group is one channel group with its decision chain.
type group struct {
	name     string
	channels []string
	public   bool
	accept   [KindEdge + 1]bool
	same     bool
	jwt      *jwtVerifier
	st       *secureTokenVerifier
	// rules are the allow/deny lists, run on every request before the decision cache: they read what the cache
	// key leaves out (user agent, referer), so their outcome is never cached. nil when the group has none.
	rules *ruleSet
	// chain runs in order until a step decides, and its outcome is cached: the token verifier, then the
	// middleware backends.
	chain        []step
	backends     []*backendClient
	failOpen     bool
	defaultAllow bool
	stale        time.Duration
}

// step is one link of a group's decision chain. It returns decided=false to pass the request on; a decided
// step's error (nil for allow) is the outcome.
type step interface {
	run(a *Authorizer, g *group, in *stepInput, out *verified) (decided bool, err error)
}

type stepInput struct {
	tok     []byte
	kind    TokenKind
	channel []byte
	req     *Request
	now     time.Time

	rule      string // set by the step that allowed without verification
	sessionID uint64 // for the backends, derived before they are asked
	stale     *entry // an outdated backend decision, to stand in while every backend fails
	prevCalls int    // backend calls made before for this key

	backendCalls int  // the number of this backend call
	useStale     bool // every backend failed: serve stale
	fromBackend  bool // a backend answered
}

// verifierStep checks the token with the verifier for its kind. In a group with backends, a token no local
// verifier accepts is passed on to them: middleware tokens have no shape of their own.
type verifierStep struct{}

func (verifierStep) run(a *Authorizer, g *group, in *stepInput, out *verified) (bool, error) {
	if len(g.backends) > 0 {
		if !g.accept[in.kind] {
			return false, nil
		}
		if err := (verifierStep{}).verify(a, g, in, out); err != nil {
			*out = verified{}
			return false, nil
		}
		return true, nil
	}
	if !g.accept[in.kind] {
		return true, ErrKindRefused
	}
	return true, verifierStep{}.verify(a, g, in, out)
}

func (verifierStep) verify(a *Authorizer, g *group, in *stepInput, out *verified) error {
	switch in.kind {
	case KindJWT:
		return g.jwt.verify(in.tok, in.channel, in.req.ClientIP, in.now, out)
	case KindSecureToken:
		return g.st.verify(in.tok, in.channel, in.req.ClientIP, in.now, out)
	case KindEdge:
		var c edgeClaims
		if err := a.edge.verify(in.tok, in.channel, in.req.ClientIP, in.now.Unix(), &c); err != nil {
			return err
		}
		out.expires = c.expires
		out.until = c.expires * int64(time.Second)
		out.sessionID = c.sessionID
		out.ipBound = c.ipBound
		out.userID = string(c.userID())
		return nil
	}
	return ErrMalformed
}

// New builds the verifiers, keys, rules, backends, decision cache and session table. With a JWKS URL it starts a
// background refresh, and with sessions or bans a janitor, that Close stops.
func New(cfg Config, log *slog.Logger, opts ...Option) (*Authorizer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.SetDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	a := &Authorizer{log: log, disabled: cfg.Disabled, clock: time.Now, denyTTL: cfg.Cache.DenyTTL}
	a.protected = cfg.Protected
	a.childParam = cfg.ChildParam
	a.maxToken = cfg.MaxTokenBytes
	a.edgeMaxTTL = int64(cfg.Edge.MaxTTL / time.Second)
	a.edgeBindIP = cfg.Edge.BindIP
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

	key, err := readSecret(cfg.Edge.Secret, cfg.Edge.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("'auth.edge.secret_file': %w", err)
	}
	if len(key) == 0 {
		for _, g := range cfg.Groups {
			if !g.Public && g.ChildToken == ChildEdge {
				log.Warn("authz: auth.edge.secret is empty; using a random key, so child links break on restart and across edge nodes")
				break
			}
		}
	}
	if a.edge, err = newEdgeSigner(key); err != nil {
		return nil, err
	}

	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()
	jwts := map[*JWTConfig]*jwtVerifier{}
	sts := map[*SecureTokenConfig]*secureTokenVerifier{}
	for i := range cfg.Groups {
		gc := &cfg.Groups[i]
		g := &group{name: gc.Name, channels: gc.Channels, public: gc.Public, same: gc.ChildToken == ChildSame}
		for _, k := range gc.Accept {
			g.accept[parseKind(k)] = true
		}
		if gc.JWT != nil && g.accept[KindJWT] {
			if g.jwt = jwts[gc.JWT]; g.jwt == nil {
				v, err := newJWTVerifier(gc.JWT, log)
				if err != nil {
					return nil, fmt.Errorf("'auth.groups[%d]' (%s) jwt: %w", i, gc.Name, err)
				}
				a.closers = append(a.closers, v.close)
				jwts[gc.JWT], g.jwt = v, v
			}
		}
		if gc.SecureToken != nil && g.accept[KindSecureToken] {
			if g.st = sts[gc.SecureToken]; g.st == nil {
				v, err := newSecureTokenVerifier(gc.SecureToken)
				if err != nil {
					return nil, fmt.Errorf("'auth.groups[%d]' (%s) securetoken: %w", i, gc.Name, err)
				}
				sts[gc.SecureToken], g.st = v, v
			}
		}
		g.rules = buildRules(&gc.Rules)
		g.chain = []step{verifierStep{}}
		g.failOpen = gc.OnBackendError == PolicyAllow
		g.defaultAllow = gc.Default == PolicyAllow
		g.stale = gc.BackendStale
		for _, bc := range gc.Backends {
			b := newBackendClient(bc)
			a.closers = append(a.closers, b.close)
			g.backends = append(g.backends, b)
		}
		if len(g.backends) > 0 {
			g.chain = append(g.chain, backendStep{})
			if g.failOpen {
				log.Warn("authz: on_backend_error is allow: when every backend fails, viewers are served without a decision (Astra's behaviour)", "group", g.name)
			}
		}
		if g.defaultAllow && !g.public {
			log.Warn("authz: default is allow: requests without a token are served unless a rule refuses them", "group", g.name)
		}
		a.groups = append(a.groups, g)
	}
	if !cfg.Cache.Disabled {
		if a.cache, err = newDecisionCache(cfg.Cache); err != nil {
			return nil, fmt.Errorf("'auth.cache': %w", err)
		}
	}
	a.bans = newBanState(cfg.Bans.MaxEntries)
	if !cfg.Sessions.Disabled {
		a.sessions = newSessionTable(cfg.Sessions, log)
		idle := cfg.Sessions.IdleTimeout
		a.sessions.onClose = func(s *session, reason string, now time.Time) {
			// A session closed by the user's newer one stays closed for an idle period, or it would simply
			// reopen on its next segment.
			a.kickSession(s, reason, now, now.Add(idle).UnixNano())
		}
		if cfg.Sessions.Webhook.URL != "" {
			a.sessions.hook = newWebhook(cfg.Sessions.Webhook, log)
			a.closers = append(a.closers, a.sessions.hook.close)
		}
	}
	for _, o := range opts {
		o(a)
	}
	if a.clock != nil {
		a.stop, a.done = make(chan struct{}), make(chan struct{})
		go a.janitor(janitorInterval(cfg.Sessions.IdleTimeout))
	}
	ok = true
	return a, nil
}

func janitorInterval(idle time.Duration) time.Duration {
	return min(max(idle/4, 100*time.Millisecond), time.Second)
}

// janitor closes idle sessions and drops expired bans and kicks.
func (a *Authorizer) janitor(every time.Duration) {
	defer close(a.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			a.Sweep(a.clock())
		}
	}
}

// Sweep closes the sessions idle at now and drops the bans and kicks that ran out. The janitor calls it; tests
// built WithoutJanitor call it themselves.
func (a *Authorizer) Sweep(now time.Time) {
	if a.sessions != nil {
		a.sessions.sweep(now)
	}
	if a.bans != nil {
		a.bans.prune(now)
	}
}

// Close stops background work (key refreshes, janitor, webhook) and releases the cache.
func (a *Authorizer) Close() {
	if a.stop != nil {
		close(a.stop)
		<-a.done
		a.stop = nil
	}
	for _, c := range a.closers {
		c()
	}
	a.closers = nil
	if a.cache != nil {
		a.cache.close()
	}
}

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

var allowPublic = Decision{Status: http.StatusOK, Reason: "public channel"}

// Authorize decides one request: bans, the group's rules, then the cached decision of its verifiers and
// backends, then the session. The fast path (a cached decision of a known session) allocates nothing; the slow
// path verifies the token or asks the backends (one call per key however many requests wait) and caches the
// outcome, allow or deny.
func (a *Authorizer) Authorize(req *Request, c Carrier, now time.Time) Decision {
	if a.disabled {
		return Decision{Status: http.StatusOK, Reason: "authorization disabled"}
	}
	ch := req.Channel
	if len(ch) == 0 {
		ch = a.channelFromPath(req.Path)
		if len(ch) == 0 {
			return deny(ErrNoChannel, KindNone, "")
		}
	}
	g := a.groupFor(ch)
	if g == nil {
		return deny(ErrNoGroup, KindNone, "")
	}
	bans := a.bans.load()
	if !bans.empty && bans.ipBanned(req.ClientIP, now.UnixNano()) {
		return deny(ErrBanned, KindNone, g.name)
	}
	if g.public {
		d := allowPublic
		d.Group = g.name
		return d
	}
	tok := a.extract(c)
	if len(tok) > a.maxToken {
		return deny(ErrTokenTooLong, KindNone, g.name)
	}
	if g.rules != nil {
		if decided, rule, err := g.rules.eval(tok, req); decided {
			if err != nil {
				return deny(err, KindNone, g.name)
			}
			return a.allowUnverified(g, tok, rule, bans, now)
		}
	}
	if len(tok) == 0 {
		if g.defaultAllow {
			return a.allowUnverified(g, nil, "group default", bans, now)
		}
		return deny(ErrNoToken, KindNone, g.name)
	}
	var d Decision
	if a.cache == nil {
		d, _ = a.decide(g, tok, ch, req, now, nil)
		if d.Allowed() {
			if b := bans.check(&d, ch, req.ClientIP, now.UnixNano()); b != blockNone {
				d = deny(blockErrs[b], d.Kind, g.name)
			}
		}
	} else {
		d = a.cached(g, tok, ch, req, now)
	}
	if d.Allowed() && a.sessions != nil && d.Owner != "" && !req.SkipSession {
		if err := a.sessions.track(&d, g.name, ch, req.ClientIP, req.UserAgent, now.UnixNano()); err != nil {
			return deny(err, d.Kind, g.name)
		}
	}
	d.token = tok
	return d
}

// cached answers from the decision cache, or decides and caches.
func (a *Authorizer) cached(g *group, tok, ch []byte, req *Request, now time.Time) Decision {
	key := a.cache.key(tok, ch, req.ClientIP)
	e, fresh := a.cache.get(key, tok, ch, req.ClientIP, now.UnixNano())
	if fresh {
		// Fast path: a decision made for this token, channel and address.
		if gen := a.bans.load().gen; e.gen.Load() != gen {
			// A ban or kick landed since the entry was checked: check it again, once per generation.
			e.block.Store(a.bans.load().check(&e.d, ch, req.ClientIP, now.UnixNano()))
			e.gen.Store(gen)
		}
		if b := e.block.Load(); b != blockNone {
			return deny(blockErrs[b], e.d.Kind, g.name)
		}
		d := e.d
		d.Cached = true
		return d
	}
	// Slow path. With backends, one request per key asks them and the others wait for its answer.
	if len(g.backends) == 0 {
		return a.decideAndCache(g, key, tok, ch, req, now, e)
	}
	f, leader := a.flights.join(key, tok, ch, req.ClientIP)
	switch {
	case f == nil:
		return a.decideAndCache(g, key, tok, ch, req, now, e)
	case !leader:
		<-f.done
		return f.d
	}
	d := a.decideAndCache(g, key, tok, ch, req, now, e)
	a.flights.finish(key, f, d)
	return d
}

// outcome tells decideAndCache how to cache a decision.
type outcome struct {
	until       int64 // unix nanos after which it must be re-made; 0: none of its own
	fromBackend bool
	calls       int
	stale       bool // it is the previous entry's, served while every backend fails
}

func (a *Authorizer) decideAndCache(g *group, key uint64, tok, ch []byte, req *Request, now time.Time, prev *entry) Decision {
	// The generation is read before deciding: a ban landing meanwhile makes the entry re-check on its first hit.
	bans := a.bans.load()
	d, how := a.decide(g, tok, ch, req, now, prev)
	block := blockNone
	if d.Allowed() {
		block = bans.check(&d, ch, req.ClientIP, now.UnixNano())
	}
	switch {
	case how.stale:
		// Serve the old decision a little longer, and ask again when a refusal would be asked again; the stale
		// window keeps counting from the original expiry.
		until := now.Add(a.denyTTL).UnixNano()
		if until > prev.staleUntil {
			until = prev.staleUntil
		}
		a.cache.putEntry(key, tok, ch, req.ClientIP, &d, until, now, time.Duration(prev.staleUntil-until), prev.calls, bans.gen, block)
	case how.fromBackend:
		a.cache.putEntry(key, tok, ch, req.ClientIP, &d, how.until, now, g.stale, how.calls, bans.gen, block)
	default:
		a.cache.putEntry(key, tok, ch, req.ClientIP, &d, how.until, now, 0, how.calls, bans.gen, block)
	}
	if block != blockNone {
		return deny(blockErrs[block], d.Kind, g.name)
	}
	return d
}

// allowUnverified serves a request a rule or the group default let through. Such requests open no session;
// their children carry the incoming token as it came, so that the same rule lets them through.
func (a *Authorizer) allowUnverified(g *group, tok []byte, rule string, bans *banSet, now time.Time) Decision {
	if len(tok) > 0 && len(bans.tokens) > 0 {
		if u, ok := bans.tokens[fingerprint(tok)]; ok && active(u, now.UnixNano()) {
			return deny(ErrBanned, KindNone, g.name)
		}
	}
	return Decision{Status: http.StatusOK, Reason: "allowed by " + rule, Group: g.name, token: tok, pass: len(tok) > 0}
}

// decide runs the group's chain and prepares the child token.
func (a *Authorizer) decide(g *group, tok, ch []byte, req *Request, now time.Time, prev *entry) (Decision, outcome) {
	in := stepInput{tok: tok, kind: kindOf(tok), channel: ch, req: req, now: now}
	if len(g.backends) > 0 {
		in.sessionID = a.edge.sessionID(tok, ch, req.ClientIP)
		if prev != nil {
			in.stale = prev
			in.prevCalls = prev.calls
			if prev.staleUntil <= now.UnixNano() {
				in.stale = nil
			}
		}
	}
	var (
		v       verified
		err     error
		decided bool
	)
	for _, s := range g.chain {
		if decided, err = s.run(a, g, &in, &v); decided {
			break
		}
	}
	if !decided {
		err = ErrSignature
	}
	how := outcome{until: v.until, fromBackend: in.fromBackend, calls: in.backendCalls}
	if in.backendCalls == 0 && prev != nil {
		how.calls = prev.calls
	}
	if in.useStale {
		how.stale = true
		return prev.d, how
	}
	if err != nil {
		return deny(err, in.kind, g.name), how
	}
	if in.rule != "" {
		// on_backend_error: allow.
		d := Decision{Status: http.StatusOK, Reason: "allowed by " + in.rule, Kind: in.kind, Group: g.name, pass: true}
		return d, how
	}
	d := Decision{
		Status:      http.StatusOK,
		Reason:      "ok",
		Kind:        in.kind,
		Group:       g.name,
		UserID:      v.userID,
		SessionID:   v.sessionID,
		Expires:     v.expires,
		MaxSessions: v.maxSessions,
		unique:      v.unique,
	}
	if in.kind == KindEdge {
		if fp := parseFingerprint(d.UserID); fp != 0 {
			// The child of a token without a user carries the parent's fingerprint in place of one.
			d.fp, d.Owner, d.UserID = fp, d.UserID, ""
		} else {
			d.Owner = d.UserID
		}
	} else {
		d.fp = fingerprint(tok)
		d.Owner = d.UserID
		if d.Owner == "" {
			d.Owner = fingerprintString(d.fp)
		}
		d.SessionID = in.sessionID
		if d.SessionID == 0 {
			d.SessionID = a.edge.sessionID(tok, ch, req.ClientIP)
		}
	}
	if d.Owner == "" {
		d.Owner = sessionIDString(d.SessionID)
	}
	if g.same || in.kind == KindEdge {
		// An edge token is already scoped to this channel; passing it on keeps its expiry and session.
		d.child = string(appendQueryEscape(nil, tok))
		return d, how
	}
	exp := now.Unix() + a.edgeMaxTTL
	if v.expires > 0 && v.expires < exp {
		exp = v.expires
	}
	et := EdgeToken{Channel: string(ch), Expires: exp, SessionID: d.SessionID, UserID: d.Owner}
	if v.ipBound || a.edgeBindIP {
		et.IP = req.ClientIP
	}
	b, err := a.edge.appendToken(make([]byte, 0, 96), &et)
	if err != nil {
		return deny(errChildToken, in.kind, g.name), how
	}
	d.child = string(b)
	return d, how
}

var errChildToken = errors.New("cannot mint a child token for this channel")

func deny(err error, kind TokenKind, group string) Decision {
	reason := err.Error()
	if kind != KindNone {
		reason = kind.String() + ": " + reason
	}
	return Decision{Status: statusOf(err), Reason: reason, Kind: kind, Group: group}
}

// AppendChildQuery appends `param=value` for the child URIs of an allowed playlist: the edge token in edge mode,
// the incoming token unchanged in same mode, escaped for a query string. It appends nothing for a refused
// request. now is reserved for re-minting long-lived children.
func (a *Authorizer) AppendChildQuery(dst []byte, req *Request, d *Decision, now time.Time) []byte {
	if d.Allowed() && d.pass && len(d.token) > 0 {
		dst = append(dst, a.childParam...)
		dst = append(dst, '=')
		return appendQueryEscape(dst, d.token)
	}
	if !d.Allowed() || d.child == "" {
		return dst
	}
	dst = append(dst, a.childParam...)
	dst = append(dst, '=')
	return append(dst, d.child...)
}

func (a *Authorizer) extract(c Carrier) []byte {
	for _, s := range a.sources {
		var v []byte
		switch s.kind {
		case srcQuery:
			v = c.QueryArg(s.name)
		case srcCookie:
			v = c.Cookie(s.name)
		case srcBearer:
			v = bearer(c.Header("Authorization"))
		}
		if len(v) > 0 {
			return v
		}
	}
	return nil
}

// bearer returns the credentials of `Bearer TOKEN` (scheme case-insensitive, RFC 6750).
func bearer(h []byte) []byte {
	const scheme = "bearer "
	if len(h) <= len(scheme) {
		return nil
	}
	for i := 0; i < len(scheme); i++ {
		c := h[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != scheme[i] {
			return nil
		}
	}
	h = h[len(scheme):]
	for len(h) > 0 && (h[0] == ' ' || h[0] == '\t') {
		h = h[1:]
	}
	for len(h) > 0 && (h[len(h)-1] == ' ' || h[len(h)-1] == '\t') {
		h = h[:len(h)-1]
	}
	return h
}

func (a *Authorizer) groupFor(ch []byte) *group {
	for _, g := range a.groups {
		for _, p := range g.channels {
			if globMatch(p, ch) {
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
			if i == 0 || i > maxChannelBytes {
				return nil
			}
			return rest[:i]
		}
	}
	// A bare /{channel} is not an HLS resource.
	return nil
}

// appendQueryEscape percent-encodes everything but RFC 3986 unreserved bytes.
func appendQueryEscape(dst, s []byte) []byte {
	const hexd = "0123456789ABCDEF"
	for _, c := range s {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hexd[c>>4], hexd[c&15])
	}
	return dst
}
