package proxy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// Edges in tiers: an edge may use another hlsedge, a shield, as its origin, as Fastly shielding and Cloudflare's
// tiered cache do, so that a fleet of edges costs the headend one fetch per object. The shield coalesces and
// caches exactly as an edge does, under the same cache keys (origin path plus the query the origin needs, never
// a token), since an edge asks it for that very key.
//
// Viewers are authorized at their edge; no viewer token travels further. An edge signs each request to a shield
// instead: the tierHeader carries an HMAC-SHA256, with the key shared by the tiers, over the method, the request
// URI and the time. A shield takes a valid signature in place of a viewer's token, refuses an invalid one with
// 403, and authorizes requests without one as any edge would.

// TierConfig places the node in a tier of hlsedge nodes.
type TierConfig struct {
	// Role is "edge" (the default) or "shield". A shield also accepts requests signed with the tier key in place of
	// viewer tokens: those are edges asking on behalf of viewers they have authorized. Edges name their shield in
	// 'origins' with `shield: true`.
	Role string `yaml:"role"`
	// Key is the tier key the shield and its edges share, at least 32 bytes: a shield checks signatures with it,
	// an edge signs its requests to origins marked `shield: true` with it. Set one of Key, KeyFile (read once at
	// start, surrounding whitespace trimmed) or KeyEnv (the name of an environment variable that holds it).
	Key     string `yaml:"key"`
	KeyFile string `yaml:"key_file"`
	KeyEnv  string `yaml:"key_env"`

	key []byte
}

// tierHeader carries an edge's signature on its requests to a shield: "<unix seconds>.<base64url HMAC-SHA256>".
const tierHeader = "X-Hlsedge-Tier"

// tierValidity is how far a signature's time may be from the shield's clock, either way: room for clock skew
// between machines, short enough that a captured header is soon useless. It only ever opens the one URI it was
// made for.
const tierValidity = 10 * time.Second

const (
	tierRoleEdge   = "edge"
	tierRoleShield = "shield"
)

// validate checks the section and loads the key; origins tell whether this edge signs requests to a shield.
func (t *TierConfig) validate(origins []OriginConfig) error {
	switch t.Role {
	case "", tierRoleEdge, tierRoleShield:
	default:
		return fmt.Errorf("'tier.role' must be edge or shield, got %q", t.Role)
	}
	sources := 0
	for _, s := range []string{t.Key, t.KeyFile, t.KeyEnv} {
		if s != "" {
			sources++
		}
	}
	if sources > 1 {
		return errors.New("'tier.key', 'tier.key_file' and 'tier.key_env' must not be set together")
	}
	shieldOrigin := -1
	for i := range origins {
		if origins[i].Shield {
			shieldOrigin = i
			break
		}
	}
	t.key = nil
	if sources == 0 {
		switch {
		case t.Role == tierRoleShield:
			return errors.New("'tier.key' (or 'tier.key_file', 'tier.key_env') is required with 'tier.role: shield'")
		case shieldOrigin >= 0:
			return fmt.Errorf("'tier.key' (or 'tier.key_file', 'tier.key_env') is required to sign requests to 'origins[%d]', a shield", shieldOrigin)
		}
		return nil
	}
	field, key := "tier.key", t.Key
	switch {
	case t.KeyFile != "":
		field = "tier.key_file"
		b, err := os.ReadFile(t.KeyFile)
		if err != nil {
			return fmt.Errorf("'tier.key_file' must be readable: %w", err)
		}
		key = strings.TrimSpace(string(b))
	case t.KeyEnv != "":
		field = "tier.key_env"
		key = strings.TrimSpace(os.Getenv(t.KeyEnv))
	}
	if len(key) < 32 {
		return fmt.Errorf("'%s' must give a key of at least 32 bytes", field)
	}
	t.key = []byte(key)
	return nil
}

// shield returns whether the node takes signed requests from edges.
func (t *TierConfig) shield() bool { return t.Role == tierRoleShield }

// signTier sets the tier signature for a request about to go to a shield.
func signTier(h *fasthttp.RequestHeader, key, method, uri []byte, now time.Time) {
	unix := now.Unix()
	v := strconv.AppendInt(make([]byte, 0, 64), unix, 10)
	v = append(v, '.')
	v = base64.RawURLEncoding.AppendEncode(v, tierMAC(key, method, uri, unix))
	h.SetBytesV(tierHeader, v)
}

func tierMAC(key, method, uri []byte, unix int64) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("hlsedge-tier-v1\n"))
	m.Write(method)
	m.Write([]byte{'\n'})
	m.Write(uri)
	m.Write([]byte{'\n'})
	m.Write(strconv.AppendInt(nil, unix, 10))
	return m.Sum(nil)
}

// Reasons a tier signature is refused; they go to the log and to the edge, never with the signature itself.
var (
	errTierMalformed = errors.New("malformed tier signature")
	errTierTime      = errors.New("tier signature outside its validity")
	errTierMAC       = errors.New("tier signature does not match")
)

// verifyTier checks a tier signature over method and the raw request URI.
func verifyTier(key, method, uri, value []byte, now time.Time) error {
	dot := -1
	for i, c := range value {
		if c == '.' {
			dot = i
			break
		}
	}
	if dot <= 0 || dot > 19 {
		return errTierMalformed
	}
	unix, ok := parseDecimal(value[:dot])
	if !ok {
		return errTierMalformed
	}
	got, err := base64.RawURLEncoding.AppendDecode(nil, value[dot+1:])
	if err != nil || len(got) != sha256.Size {
		return errTierMalformed
	}
	if d := now.Sub(time.Unix(int64(unix), 0)); d > tierValidity || d < -tierValidity {
		return errTierTime
	}
	if !hmac.Equal(got, tierMAC(key, method, uri, int64(unix))) {
		return errTierMAC
	}
	return nil
}

// tierGate is a shield's check of its edges' signatures.
type tierGate struct {
	key              []byte
	accepted, denied *metrics.Counter
}

func newTierGate(cfg *Config, set *metrics.Set) *tierGate {
	if !cfg.Tier.shield() {
		return nil
	}
	return &tierGate{
		key: cfg.Tier.key,
		// GetOrCreate: every reload builds its own gate on the one metrics set.
		accepted: set.GetOrCreateCounter(`hlsedge_tier_requests_total{result="accepted"}`),
		denied:   set.GetOrCreateCounter(`hlsedge_tier_requests_total{result="refused"}`),
	}
}

// admit decides a request that carries a tier signature. handled is false when there is none: the request is
// then a viewer's, authorized as usual. Otherwise ok tells whether the signature holds; a refusal is answered
// here, 403 with a one-line reason, and logged.
func (s *Server) admitTier(ctx *fasthttp.RequestCtx, sc *scratch) (handled, ok bool) {
	g := s.tier
	if g == nil {
		return false, false
	}
	v := ctx.Request.Header.Peek(tierHeader)
	if len(v) == 0 {
		return false, false
	}
	// The raw request URI as sent, not fasthttp's normalised path: it is what the edge signed.
	if err := verifyTier(g.key, ctx.Method(), ctx.Request.Header.RequestURI(), v, sc.now); err != nil {
		g.denied.Inc()
		s.reqLog.Warn("tier request refused", "reason", err.Error(), "ip", peerAddr(ctx).String(),
			"path", string(ctx.Request.URI().PathOriginal()))
		fail(ctx, fasthttp.StatusForbidden, err.Error())
		return true, false
	}
	g.accepted.Inc()
	return true, true
}
