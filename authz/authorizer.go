package authz

import (
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/playlist"
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
	// Memo is the connection's memo of its last decisions (memo.go); nil: none.
	Memo *Memo
}

// Decision is the answer for one request. Allowed decisions carry what the verifier learned about the viewer.
type Decision struct {
	// Status is 200 when allowed; 401 without a token, 410 for an authentic but expired token, 403 otherwise.
	Status int
	// Reason is one line for the viewer and the logs. It never holds a token, a claim value or a secret.
	Reason string
	// Kind is the token's kind (none when no token was checked).
	Kind token.Kind
	// Group is the name of the channel group that decided.
	Group string
	// UserID is the token's user (JWT `sub`, edge token user), empty when unknown.
	UserID string
	// SessionID names the viewer's session: one credential on one channel from one address with one user
	// agent, stable across playlist refreshes, restarts and nodes (sessionid.go). Child edge tokens carry the
	// credential's part of it, so a playlist's children stay in its session.
	SessionID uint64
	// Expires is the token's expiry in unix seconds; 0 when it has none.
	Expires int64
	// MaxSessions is the token's (or backend's) concurrent-session limit; 0 when it sets none.
	MaxSessions int
	// Owner is whom session limits count: the user, or for a token without one its fingerprint (`~` and 16
	// hex digits; for a viewer a middleware let in without a token, its query's). Empty for requests allowed by
	// a rule or the group default, which open no session.
	Owner string
	// Cached tells that the decision came from the decision cache.
	Cached bool

	token   []byte            // the incoming token, request memory: valid during the handler only
	child   string            // query value child URIs carry, already escaped
	pass    bool              // children carry the incoming token as it came (allowed by a rule)
	fp      token.Fingerprint // the credential, or for an edge token the viewer's own (its root); 0: unknown
	unique  bool              // the backend said X-Unique: the user's newest session closes the others
	bindIP  bool              // children are bound to the client address
	mint    bool              // children are edge tokens this edge mints (not the incoming token passed on)
	sess    Session           // the session this request was counted in
	entry   *entry            // the cache entry the decision came from or went into; nil without one
	key     token.KeyRef      // the key that verified the token; 0 for a middleware's decision
	mintKey token.KeyRef      // the edge key child carries a token of; 0 when child is not minted
	base    uint64            // the credential's session id on this channel, which children carry (sessionid.go)
}

// Allowed reports whether the request may be served.
func (d Decision) Allowed() bool { return d.Status == http.StatusOK }

// Token returns the incoming token; it points into request memory and is valid only until the handler returns.
func (d Decision) Token() []byte { return d.token }

// AddBytes counts response bytes into the decision's session, after the response is written.
func (d *Decision) AddBytes(n int64) {
	if d.sess != nil && n > 0 {
		d.sess.AddBytes(n)
	}
}

// ViewerState is what the Authorizer knows about viewers beyond their tokens: open sessions, the operator's
// bans and kicks, and the events they raise. MemState keeps it in this process; a fleet keeps it in a shared
// store. An Authorizer built WithState around another one's state (a reload) takes over its sessions, bans
// and kicks. Revocations and Track run on every request: they must answer from memory, and Track must not
// allocate for a known session.
type ViewerState interface {
	// Revocations returns the bans and kicks in force: an immutable snapshot, never nil.
	Revocations() *Revocations
	// Track counts an allowed request into its viewer's session, opening one when needed; it refuses the newest
	// session of an owner over their limit (ErrSessionLimit, ErrSessionsFull). It returns a nil Session for a
	// viewer it does not track.
	Track(v Viewer, now int64) (Session, error)
	// Ban refuses an address or CIDR, a user or a token, on every channel, from the next request on, and closes
	// the sessions it covers.
	Ban(r BanRequest, now time.Time) (Ban, error)
	// Unban lifts a ban by id; it reports whether there was one.
	Unban(id string) bool
	// Bans lists the bans in force.
	Bans(now time.Time) []Ban
	// Kick closes a session; its session ids are refused everywhere, and its token on that channel unless
	// another open session of the token watches it, until the token expires, starting with the very next
	// request.
	Kick(id string, now time.Time) (SessionInfo, error)
	// Sessions lists the open sessions that match f, oldest first.
	Sessions(f SessionFilter) []SessionInfo
	// Viewers counts the active sessions per channel.
	Viewers(now time.Time) map[string]int
	// Sweep closes the sessions idle at now and drops the bans and kicks that ran out.
	Sweep(now time.Time)
	// Stats reports the session, ban and kick counters; Backends stays empty.
	Stats() Stats
}

// Viewer is an allowed request as the viewer state sees it. Byte slices point into request memory and are
// only read during the call.
type Viewer struct {
	// Owner is whom session limits count (Decision.Owner).
	Owner string
	// User is the token's user; empty when it names none.
	User string
	// Fingerprint names the credential; 0 when unknown.
	Fingerprint token.Fingerprint
	// SessionID is the decision's session id.
	SessionID uint64
	// Expires is the token's expiry in unix seconds; 0 when it has none.
	Expires int64
	// MaxSessions is the owner's limit from the token or a middleware; 0: the configured one.
	MaxSessions int
	// Unique closes the owner's other sessions (a middleware's X-Unique).
	Unique bool
	// Group is the channel group that decided.
	Group     string
	Channel   []byte
	IP        netip.Addr
	UserAgent []byte
	// Hint is the connection's TrackHint, for a state whose Track can answer from it; nil: none.
	Hint *TrackHint
}

// Session is a tracked viewing session, as a decision holds it.
type Session interface {
	// AddBytes counts response bytes into the session.
	AddBytes(n int64)
}

var (
	allowDisabled = Decision{Status: http.StatusOK, Reason: "authorization disabled"}
	allowPublic   = Decision{Status: http.StatusOK, Reason: "public channel"}
	errChildToken = errors.New("cannot mint a child token for this channel")
)

// Authorize decides one request, top to bottom: the channel, its group and the token; the group's rules; the
// decision cache, or on a miss the local verifier and then the middlewares; the bans and kicks in force; the
// session. The fast path (a cached decision of a known session) allocates nothing.
func (a *Authorizer) Authorize(req *Request, c Carrier, now time.Time) Decision {
	var d Decision
	a.AuthorizeTo(&d, req, c, now)
	return d
}

// AuthorizeTo is Authorize writing the decision into d, which it overwrites whole: a caller that keeps d in its
// per-request scratch saves the copies of a 200-byte struct that returning it costs.
func (a *Authorizer) AuthorizeTo(d *Decision, req *Request, c Carrier, now time.Time) {
	if a.disabled {
		*d = allowDisabled
		return
	}
	at := now.UnixNano()
	// Extract.
	ch := req.Channel
	if len(ch) == 0 {
		if ch = a.channelFromPath(req.Path); len(ch) == 0 {
			*d = deny(ErrNoChannel, token.KindNone, "")
			return
		}
	}
	var g *group
	if req.Memo != nil {
		g = req.Memo.group(a, ch)
	}
	if g == nil {
		g = a.groupFor(ch)
	}
	if g == nil {
		*d = deny(ErrNoGroup, token.KindNone, "")
		return
	}
	rev := a.state.Revocations()
	if rev.ipBanned(req.ClientIP, at) {
		*d = deny(ErrBanned, token.KindNone, g.name)
		return
	}
	if g.public {
		*d = allowPublic
		d.Group = g.name
		return
	}
	tok := a.extract(c)
	if len(tok) > a.maxToken {
		*d = deny(ErrTokenTooLong, token.KindNone, g.name)
		return
	}

	// Rules, on every request: they read what the cache key leaves out (user agent, referer).
	if g.rules != nil {
		if decided, rule, err := g.rules.eval(tok, req); decided {
			if err != nil {
				*d = deny(err, token.KindNone, g.name)
				return
			}
			*d = allowUnverified(g, tok, rule, rev, at)
			return
		}
	}
	if len(tok) == 0 && len(g.backends) == 0 {
		// A group with middlewares asks them for requests without a token too, as Astra does.
		if g.defaultAllow {
			*d = allowUnverified(g, nil, "group default", rev, at)
			return
		}
		*d = deny(token.ErrNoToken, token.KindNone, g.name)
		return
	}

	// Cache, verifiers, middlewares, bans and kicks.
	a.decision(d, g, tok, ch, req, rev, now)
	if d.Allowed() && d.Owner != "" {
		a.ownSession(d, g, req, rev, at)
	}

	// Session.
	if d.Allowed() && d.Owner != "" && !req.SkipSession && a.sessions {
		v := Viewer{
			Owner: d.Owner, User: d.UserID, Fingerprint: d.fp, SessionID: d.SessionID, Expires: d.Expires,
			MaxSessions: d.MaxSessions, Unique: d.unique, Group: g.name, Channel: ch, IP: req.ClientIP,
			UserAgent: req.UserAgent,
		}
		if req.Memo != nil {
			v.Hint = &req.Memo.track
		}
		s, err := a.state.Track(v, at)
		if err != nil {
			holdRefusal(d, err)
			*d = deny(err, d.Kind, g.name)
			return
		}
		d.sess = s
	}
	d.token = tok
}

// flightKey is what one decision is made for: the request material itself, so that no two viewers share a
// decision by a hash collision, and the independent hash of the query and user agent a backend_key adds.
type flightKey struct {
	tok, ch string
	ip      netip.Addr
	aux     uint64
}

// decision answers from the decision cache, or decides and caches. With middlewares, one request per key asks
// them and the others with that key wait for its answer. Bans and kicks apply to the outcome either way.
func (a *Authorizer) decision(d *Decision, g *group, tok, ch []byte, req *Request, rev *Revocations, now time.Time) {
	at := now.UnixNano()
	if a.cache == nil {
		*d, _ = a.decide(g, tok, ch, req, now, nil)
		if d.Allowed() {
			*d = blocked(*d, g, rev.check(d, ch, req.ClientIP, at))
		}
		return
	}
	if req.Memo != nil {
		if s := req.Memo.find(a, tok, ch, req.ClientIP); s != nil && at < s.e.until && s.e.epoch.Load() == a.epoch &&
			req.Memo.count() {
			// Fastest path: the connection asked about this very token a moment ago.
			a.hit(d, g, s.e, ch, req, rev, at)
			return
		}
	}
	key := a.cache.lookup(g, tok, ch, req)
	e, fresh := a.cache.get(key, tok, ch, at)
	if e != nil && e.epoch.Load() != a.epoch && !a.adopt(e, g) {
		// Cached under an earlier config whose group or keys a reload removed (see adopt).
		a.cache.drop(e)
		e, fresh = nil, false
	}
	if fresh {
		// Fast path: a decision made for this token, channel and address.
		if req.Memo != nil && key.aux == 0 && key.ip == req.ClientIP {
			req.Memo.remember(a, g, e)
		}
		a.hit(d, g, e, ch, req, rev, at)
		return
	}
	// Slow path.
	if len(g.backends) == 0 {
		*d = a.decideAndCache(g, key, tok, ch, req, rev, now, e)
		return
	}
	var err error
	*d, err, _ = a.flights.Do(flightKey{string(tok), string(ch), key.ip, key.aux}, func() (Decision, error) {
		return a.decideAndCache(g, key, tok, ch, req, rev, now, e), nil
	})
	if err != nil {
		// Only a panic gets here; every waiter is refused with the leader.
		a.log.Error("authz: deciding with the middlewares failed", "group", g.name, "err", err)
		*d = deny(ErrBackendDown, token.KindNone, g.name)
	}
}

// hit serves a cached decision, checked again against bans and kicks once per generation of them.
func (a *Authorizer) hit(d *Decision, g *group, e *entry, ch []byte, req *Request, rev *Revocations, at int64) {
	if e.gen.Load() != rev.gen {
		e.block.Store(rev.check(&e.d, ch, req.ClientIP, at))
		e.gen.Store(rev.gen)
	}
	if b := e.block.Load(); b != blockNone {
		*d = deny(blockErrs[b], e.d.Kind, g.name)
		return
	}
	*d = e.d
	d.Cached = true
	d.entry = e
}

// decideAndCache decides, checks the outcome against the bans and kicks of rev, and caches both: the entry
// remembers rev's generation, read before deciding, so a ban landing meanwhile is checked on its first hit.
func (a *Authorizer) decideAndCache(g *group, key decisionKey, tok, ch []byte, req *Request, rev *Revocations, now time.Time, prev *entry) Decision {
	d, hint := a.decide(g, tok, ch, req, now, prev)
	block := blockNone
	if d.Allowed() {
		block = rev.check(&d, ch, req.ClientIP, now.UnixNano())
	}
	d.entry = a.cache.put(key, tok, ch, &d, hint, now, rev.gen, block)
	return blocked(d, g, block)
}

// cacheHint says how long a decision may be cached, and what the middlewares are to be told next time.
type cacheHint struct {
	until int64         // unix nanos after which the decision must be made again; 0: none of its own
	stale time.Duration // how long past until a middleware's answer may stand in while every middleware fails
	calls int           // middleware calls made for this key so far (Flussonic's request_number)
	// backend tells that a middleware made the decision.
	backend bool
}

// decide makes the decision for a token the cache did not answer: the local verifier for the token's kind,
// then, in a group with middlewares, the middlewares for a token no local verifier accepts (a middleware's
// token has no shape of its own). prev is the key's outdated entry while it may stand in for failing
// middlewares, or nil.
func (a *Authorizer) decide(g *group, tok, ch []byte, req *Request, now time.Time, prev *entry) (Decision, cacheHint) {
	kind := token.KindOf(tok)
	var v token.Verified
	err := ErrKindRefused
	switch {
	case len(tok) == 0:
		// Only a group with middlewares gets here without a token.
		kind, err = token.KindNone, token.ErrNoToken
	case g.verifies(kind):
		err = a.verify(g, kind, tok, ch, req.ClientIP, now, &v)
	}
	switch {
	case err == nil:
		return a.allow(g, &v, false, tok, ch, req, now), cacheHint{until: v.Until, calls: prev.callCount()}
	case len(g.backends) == 0:
		return g.refuse(err, kind), cacheHint{calls: prev.callCount()}
	}
	return a.askBackends(g, tok, ch, req, now, prev)
}

// verify runs the local verifier for the token's kind.
func (a *Authorizer) verify(g *group, kind token.Kind, tok, ch []byte, ip netip.Addr, now time.Time, out *token.Verified) error {
	switch kind {
	case token.KindJWT:
		return g.jwt.Verify(tok, ch, ip, now, out)
	case token.KindSecureToken:
		return g.st.Verify(tok, ch, ip, now, out)
	}
	var c token.EdgeClaims
	if err := a.edge.Verify(tok, ch, ip, now.Unix(), &c); err != nil {
		return err
	}
	*out = c.Verified()
	if out.Fingerprint == 0 {
		// Minted by a tool, not derived from a viewer's token: it is its own root.
		out.Fingerprint = token.FingerprintOf(tok)
	}
	return nil
}

// askBackends puts the token to the group's middlewares. Their answers, allow or refusal, are cached like
// local decisions and kept past their end to stand in while every middleware fails; with no such answer left,
// the group's on_backend_error policy decides.
func (a *Authorizer) askBackends(g *group, tok, ch []byte, req *Request, now time.Time, prev *entry) (Decision, cacheHint) {
	calls := prev.callCount()
	id := a.backendIdentity(g, tok, ch, req)
	q := backendQuery{
		token: string(tok), channel: string(ch), path: string(req.Path), rawQuery: string(req.RawQuery),
		userAgent: string(req.UserAgent), referer: string(req.Referer), host: string(req.Host),
		ip: req.ClientIP, sessionID: id.session, renew: calls > 0, number: calls + 1,
	}
	q.streamClients, q.totalClients = a.clients(ch, now)
	hint := cacheHint{calls: q.number, backend: true}
	ans, err := g.ask(&q)
	if err != nil {
		a.log.Debug("authz: every auth backend failed", "group", g.name, "err", err)
		switch {
		case prev != nil:
			// Serve the previous answer a little longer, and ask again when a refusal would be asked again; the
			// stale window keeps counting from the original expiry.
			until := min(now.Add(a.denyTTL).UnixNano(), prev.staleUntil)
			return prev.d, cacheHint{until: until, stale: time.Duration(prev.staleUntil - until), calls: prev.calls, backend: prev.backend}
		case g.failOpen:
			// Astra's behaviour, by the operator's choice; asked again as soon as a refusal would be.
			hint.until = now.Add(a.denyTTL).UnixNano()
			return Decision{Status: http.StatusOK, Reason: "allowed by on_backend_error: allow", Group: g.name, pass: true}, hint
		}
		return deny(ErrBackendDown, token.KindNone, g.name), hint
	}
	hint.stale = g.stale
	if ans.duration > 0 {
		hint.until = now.Add(ans.duration).UnixNano()
	}
	switch {
	case !ans.allow:
		return deny(&backendDenial{status: ans.status}, token.KindNone, g.name), hint
	case len(ans.userID) > token.MaxUserIDBytes:
		return deny(token.ErrUserIDTooLong, token.KindNone, g.name), hint
	}
	v := token.Verified{UserID: ans.userID, Fingerprint: id.fp, MaxSessions: ans.maxSessions, SessionID: id.base,
		IPBound: id.bound && len(tok) == 0}
	return a.allow(g, &v, ans.unique, tok, ch, req, now), hint
}

// allow builds the decision for a viewer a verifier or a middleware let in: whom session limits count, the
// session, and the query the children of its playlists carry.
func (a *Authorizer) allow(g *group, v *token.Verified, unique bool, tok, ch []byte, req *Request, now time.Time) Decision {
	d := Decision{
		Status:      http.StatusOK,
		Reason:      "ok",
		Kind:        v.Kind,
		Group:       g.name,
		UserID:      v.UserID,
		SessionID:   v.SessionID,
		Expires:     v.Expires,
		MaxSessions: v.MaxSessions,
		fp:          v.Fingerprint,
		unique:      unique,
		key:         v.Key,
		bindIP:      v.IPBound || a.edgeBindIP,
		// A viewer a middleware let in without a token gets an edge token even in a `child_token: same` group.
		mint: !(g.same && len(tok) > 0),
	}
	if v.Kind != token.KindEdge && v.SessionID == 0 {
		// An edge token carries its session, a middleware's decision names the one it was made for; any other
		// token gets one stable for its credential (every spelling alike) on this channel from this address,
		// across playlist refreshes and edge restarts.
		d.SessionID = a.edge.SessionID(d.fp, ch, req.ClientIP)
	}
	switch {
	case d.UserID != "":
		d.Owner = d.UserID
	case d.fp != 0:
		d.Owner = d.fp.String()
	default:
		d.Owner = sessionIDString(d.SessionID)
	}
	if (g.same && len(tok) > 0) || v.Kind == token.KindEdge {
		// An edge token is already scoped to this channel; passing it on keeps its expiry and session. A viewer
		// a middleware let in without a token gets an edge token: its query may carry a login, which must not
		// reach the origin in every child URI nor split the origin cache per viewer.
		d.child = string(playlist.AppendQueryEscape(nil, tok))
		return d
	}
	exp := now.Unix() + a.edgeMaxTTL
	if v.Expires > 0 && v.Expires < exp {
		exp = v.Expires
	}
	// The child carries the viewer's token as its root: a ban or kick of that token reaches every child.
	et := token.EdgeToken{Channel: string(ch), Expires: exp, SessionID: d.SessionID, UserID: d.UserID, Root: d.fp}
	if d.bindIP {
		et.IP = req.ClientIP
	}
	b, err := a.edge.AppendToken(make([]byte, 0, 96), &et)
	if err != nil {
		return deny(errChildToken, v.Kind, g.name)
	}
	d.child = string(b)
	d.mintKey = a.edge.MintKey()
	return d
}

// allowUnverified serves a request a rule or the group default let through. Such requests open no session;
// their children carry the incoming token as it came, so that the same rule lets them through.
func allowUnverified(g *group, tok []byte, rule string, rev *Revocations, now int64) Decision {
	if len(tok) > 0 && rev.tokenBanned(tok, now) {
		return deny(ErrBanned, token.KindNone, g.name)
	}
	return Decision{Status: http.StatusOK, Reason: "allowed by " + rule, Group: g.name, token: tok, pass: len(tok) > 0}
}

// blocked turns an allowed decision that a ban or kick now refuses into that refusal.
func blocked(d Decision, g *group, block uint32) Decision {
	if block == blockNone {
		return d
	}
	return deny(blockErrs[block], d.Kind, g.name)
}

func deny(err error, kind token.Kind, group string) Decision {
	reason := err.Error()
	if kind != token.KindNone {
		reason = kind.String() + ": " + reason
	}
	return Decision{Status: statusOf(err), Reason: reason, Kind: kind, Group: group}
}

// AppendChildQuery appends `param=value` for the child URIs of an allowed playlist: the edge token in edge mode,
// the incoming token unchanged in same mode, escaped for a query string. It appends nothing for a refused
// request. req and now are reserved for re-minting long-lived children.
func (a *Authorizer) AppendChildQuery(dst []byte, req *Request, d *Decision, now time.Time) []byte {
	if d.Allowed() && d.pass && len(d.token) > 0 {
		dst = append(dst, a.childParam...)
		dst = append(dst, '=')
		return playlist.AppendQueryEscape(dst, d.token)
	}
	if !d.Allowed() || d.child == "" {
		return dst
	}
	dst = append(dst, a.childParam...)
	dst = append(dst, '=')
	return append(dst, d.child...)
}
