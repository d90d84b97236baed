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
	// UserAgent, Referer, Origin, Host and RawQuery feed the rule chain and middleware backends (issue 5).
	UserAgent, Referer, Origin, Host, RawQuery []byte
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
	// MaxSessions is the token's concurrent-session limit; 0 when it sets none.
	MaxSessions int
	// Cached tells that the decision came from the decision cache.
	Cached bool

	token []byte // the incoming token, request memory: valid during the handler only
	child string // query value child URIs carry, already escaped
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
	groups     []*group
	closers    []func()
}

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
	// chain runs in order until a step decides. Today it holds the token verifier; issue 5 puts allow/deny
	// rules before it and middleware backends after it.
	chain []step
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
}

// verifierStep checks the token with the verifier for its kind.
type verifierStep struct{}

func (verifierStep) run(a *Authorizer, g *group, in *stepInput, out *verified) (bool, error) {
	if !g.accept[in.kind] {
		return true, ErrKindRefused
	}
	switch in.kind {
	case KindJWT:
		return true, g.jwt.verify(in.tok, in.channel, in.req.ClientIP, in.now, out)
	case KindSecureToken:
		return true, g.st.verify(in.tok, in.channel, in.req.ClientIP, in.now, out)
	case KindEdge:
		var c edgeClaims
		if err := a.edge.verify(in.tok, in.channel, in.req.ClientIP, in.now.Unix(), &c); err != nil {
			return true, err
		}
		out.expires = c.expires
		out.until = c.expires * int64(time.Second)
		out.sessionID = c.sessionID
		out.ipBound = c.ipBound
		out.userID = string(c.userID())
		return true, nil
	}
	return true, ErrMalformed
}

// New builds the verifiers, keys and decision cache. With a JWKS URL it starts a background refresh that Close
// stops.
func New(cfg Config, log *slog.Logger) (*Authorizer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.SetDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	a := &Authorizer{log: log, disabled: cfg.Disabled}
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
		g.chain = []step{verifierStep{}}
		a.groups = append(a.groups, g)
	}
	if !cfg.Cache.Disabled {
		if a.cache, err = newDecisionCache(cfg.Cache); err != nil {
			return nil, fmt.Errorf("'auth.cache': %w", err)
		}
	}
	ok = true
	return a, nil
}

// Close stops background key refreshes and releases the cache.
func (a *Authorizer) Close() {
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

// Protected reports whether a path needs a token. /healthz and /metrics never do.
func (a *Authorizer) Protected(path []byte) bool {
	if a.disabled || string(path) == "/healthz" || string(path) == "/metrics" {
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

// Authorize decides one request. The fast path (a cached decision) allocates nothing; the slow path verifies the
// token and caches the outcome, allow or deny.
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
	if g.public {
		d := allowPublic
		d.Group = g.name
		return d
	}
	tok := a.extract(c)
	if len(tok) == 0 {
		return deny(ErrNoToken, KindNone, g.name)
	}
	if len(tok) > a.maxToken {
		return deny(ErrTokenTooLong, KindNone, g.name)
	}
	if a.cache == nil {
		d, _ := a.decide(g, tok, ch, req, now)
		d.token = tok
		return d
	}
	// Fast path: a decision made for this token, channel and address.
	key := a.cache.key(tok, ch, req.ClientIP)
	if e, ok := a.cache.get(key, tok, ch, req.ClientIP, now.UnixNano()); ok {
		d := e.d
		d.Cached = true
		d.token = tok
		return d
	}
	// Slow path: verify, then cache allow and deny alike.
	d, until := a.decide(g, tok, ch, req, now)
	a.cache.put(key, tok, ch, req.ClientIP, &d, until, now)
	d.token = tok
	return d
}

// decide runs the group's chain and prepares the child token. It returns the instant (unix nanos, 0 for none)
// after which an allow must be re-made.
func (a *Authorizer) decide(g *group, tok, ch []byte, req *Request, now time.Time) (Decision, int64) {
	in := stepInput{tok: tok, kind: kindOf(tok), channel: ch, req: req, now: now}
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
	if err != nil {
		return deny(err, in.kind, g.name), 0
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
	}
	if in.kind != KindEdge {
		d.SessionID = a.edge.sessionID(tok, ch, req.ClientIP)
	}
	if g.same || in.kind == KindEdge {
		// An edge token is already scoped to this channel; passing it on keeps its expiry and session.
		d.child = string(appendQueryEscape(nil, tok))
		return d, v.until
	}
	exp := now.Unix() + a.edgeMaxTTL
	if v.expires > 0 && v.expires < exp {
		exp = v.expires
	}
	et := EdgeToken{Channel: string(ch), Expires: exp, SessionID: d.SessionID, UserID: v.userID}
	if v.ipBound || a.edgeBindIP {
		et.IP = req.ClientIP
	}
	b, err := a.edge.appendToken(make([]byte, 0, 96), &et)
	if err != nil {
		return deny(errChildToken, in.kind, g.name), 0
	}
	d.child = string(b)
	return d, v.until
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
