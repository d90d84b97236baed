package authz

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"

	"github.com/hlsedge/hlsedge/authz/internal/glob"
)

// RulesConfig is a group's allow/deny lists, checked on every request before the decision cache. They are not
// part of a cached decision because they look at what the cache key leaves out (user agent, referer).
type RulesConfig struct {
	// AllowTokens are tokens let through without verification (a monitoring probe's, say). Keep them long.
	AllowTokens []string `yaml:"allow_tokens"`
	// DenyTokens are refused outright, before any verification or backend call.
	DenyTokens []string `yaml:"deny_tokens"`
	// AllowIPs are addresses or CIDRs served without a token (an operator's own monitoring, a hotel network).
	AllowIPs []string `yaml:"allow_ips"`
	// DenyIPs are addresses or CIDRs refused outright. The admin API's bans add to these at run time.
	DenyIPs []string `yaml:"deny_ips"`
	// AllowUserAgents are User-Agent globs (`*` any run, `?` one character, case-sensitive) served without a
	// token. A user agent is trivially forged: use this for convenience, never for protection.
	AllowUserAgents []string `yaml:"allow_user_agents"`
	// DenyUserAgents are User-Agent globs refused outright (known restreaming tools).
	DenyUserAgents []string `yaml:"deny_user_agents"`
	// Domains is the domain lock: the hosts (or globs such as `*.example.com`) whose pages may embed these
	// channels, matched case-insensitively against the Origin header, or the Referer when there is no Origin.
	// Empty: no domain lock.
	Domains []string `yaml:"domains"`
	// AllowEmptyReferer lets requests without Referer and Origin pass the domain lock. Default true, because
	// set-top boxes, Smart TV apps and native players send neither.
	AllowEmptyReferer *bool `yaml:"allow_empty_referer"`
}

const maxRuleEntries = 10000

func (r *RulesConfig) validate(f string) error {
	lists := []struct {
		name string
		v    []string
	}{
		{"allow_tokens", r.AllowTokens}, {"deny_tokens", r.DenyTokens}, {"allow_ips", r.AllowIPs}, {"deny_ips", r.DenyIPs},
		{"allow_user_agents", r.AllowUserAgents}, {"deny_user_agents", r.DenyUserAgents}, {"domains", r.Domains},
	}
	for _, l := range lists {
		if len(l.v) > maxRuleEntries {
			return fmt.Errorf("'%s.rules.%s' must have at most %d entries", f, l.name, maxRuleEntries)
		}
		for i, v := range l.v {
			if v == "" {
				return fmt.Errorf("'%s.rules.%s[%d]' must not be empty", f, l.name, i)
			}
			if strings.HasSuffix(l.name, "_ips") {
				if _, err := parseIPOrPrefix(v); err != nil {
					return fmt.Errorf("'%s.rules.%s[%d]' must be an IP address or CIDR, got %q", f, l.name, i, v)
				}
			}
			if l.name == "domains" && (len(v) > 253 || strings.ContainsAny(v, "/: ")) {
				return fmt.Errorf("'%s.rules.domains[%d]' must be a host name or glob without scheme or port, got %q", f, i, v)
			}
		}
	}
	return nil
}

// parseIPOrPrefix reads `203.0.113.7` as a /32 (or /128) and `203.0.113.0/24` as itself, masked.
func parseIPOrPrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap().WithZone("")
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// ruleSet is a group's rules in Flussonic's order. It is a concrete type rather than a list of steps: an
// interface call would move the per-request input to the heap, and this runs on every request.
type ruleSet struct {
	allowTok, denyTok map[string]struct{}
	allowIP, denyIP   *ipSet
	allowUA, denyUA   []uaGlob
	domain            *domainRule
}

// buildRules turns a group's lists into a rule set; nil when there are none, so such a group pays nothing.
func buildRules(r *RulesConfig) *ruleSet {
	rs := &ruleSet{}
	any := false
	tokens := func(v []string) map[string]struct{} {
		if len(v) == 0 {
			return nil
		}
		any = true
		m := make(map[string]struct{}, len(v))
		for _, t := range v {
			m[t] = struct{}{}
		}
		return m
	}
	ips := func(v []string) *ipSet {
		if len(v) == 0 {
			return nil
		}
		any = true
		s := &ipSet{}
		s.add(v)
		return s
	}
	uas := func(v []string) []uaGlob {
		var out []uaGlob
		for _, p := range v {
			any = true
			out = append(out, compileGlob(p))
		}
		return out
	}
	rs.allowTok, rs.denyTok = tokens(r.AllowTokens), tokens(r.DenyTokens)
	rs.allowIP, rs.denyIP = ips(r.AllowIPs), ips(r.DenyIPs)
	rs.allowUA, rs.denyUA = uas(r.AllowUserAgents), uas(r.DenyUserAgents)
	if len(r.Domains) > 0 {
		any = true
		rs.domain = &domainRule{allowEmpty: r.AllowEmptyReferer == nil || *r.AllowEmptyReferer}
		for _, h := range r.Domains {
			rs.domain.hosts = append(rs.domain.hosts, compileGlob(strings.ToLower(h)))
		}
	}
	if !any {
		return nil
	}
	return rs
}

// eval runs the rules; the first match decides. An allow names the rule; a refusal is the error.
func (rs *ruleSet) eval(tok []byte, req *Request) (decided bool, rule string, err error) {
	if len(tok) > 0 {
		if _, ok := rs.allowTok[string(tok)]; ok {
			return true, "token rule", nil
		}
		if _, ok := rs.denyTok[string(tok)]; ok {
			return true, "", ErrTokenDenied
		}
	}
	if req.ClientIP.IsValid() {
		if rs.allowIP != nil && rs.allowIP.contains(req.ClientIP) {
			return true, "ip rule", nil
		}
		if rs.denyIP != nil && rs.denyIP.contains(req.ClientIP) {
			return true, "", ErrIPDenied
		}
	}
	for i := range rs.allowUA {
		if rs.allowUA[i].match(req.UserAgent) {
			return true, "user agent rule", nil
		}
	}
	for i := range rs.denyUA {
		if rs.denyUA[i].match(req.UserAgent) {
			return true, "", ErrUADenied
		}
	}
	if rs.domain != nil {
		if err := rs.domain.check(req); err != nil {
			return true, "", err
		}
	}
	return false, "", nil
}

// uaGlob is a glob compiled into its literal parts, matched with bytes.Index (vectorised) instead of byte by
// byte: a user agent is often 150 bytes and a pattern is usually `*word*`. Patterns with `?` use glob.Match.
type uaGlob struct {
	pattern string
	parts   [][]byte // the literals between stars; nil when the pattern has `?`
}

func compileGlob(p string) uaGlob {
	g := uaGlob{pattern: p}
	if strings.IndexByte(p, '?') >= 0 {
		return g
	}
	for _, part := range strings.Split(p, "*") {
		g.parts = append(g.parts, []byte(part))
	}
	return g
}

func (g *uaGlob) match(name []byte) bool {
	if g.parts == nil {
		return glob.Match(g.pattern, name)
	}
	if len(g.parts) == 1 {
		return string(name) == g.pattern
	}
	first, last := g.parts[0], g.parts[len(g.parts)-1]
	if len(name) < len(first)+len(last) || !bytes.HasPrefix(name, first) || !bytes.HasSuffix(name, last) {
		return false
	}
	rest := name[len(first) : len(name)-len(last)]
	for _, part := range g.parts[1 : len(g.parts)-1] {
		i := bytes.Index(rest, part)
		if i < 0 {
			return false
		}
		rest = rest[i+len(part):]
	}
	return true
}

// ipSet holds single addresses in a map and real prefixes in a list, so a long list of addresses costs one
// lookup.
type ipSet struct {
	addrs    map[netip.Addr]struct{}
	prefixes []netip.Prefix
}

func (s *ipSet) add(v []string) {
	for _, e := range v {
		p, err := parseIPOrPrefix(e)
		if err != nil {
			continue // validated before
		}
		if p.IsSingleIP() {
			if s.addrs == nil {
				s.addrs = map[netip.Addr]struct{}{}
			}
			s.addrs[p.Addr()] = struct{}{}
			continue
		}
		s.prefixes = append(s.prefixes, p)
	}
}

func (s *ipSet) contains(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	if _, ok := s.addrs[ip]; ok {
		return true
	}
	for _, p := range s.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// domainRule only ever refuses: a page on an allowed domain still needs a valid token.
type domainRule struct {
	hosts      []uaGlob
	allowEmpty bool
}

func (r *domainRule) check(req *Request) error {
	src := req.Origin
	if len(src) == 0 || string(src) == "null" {
		src = req.Referer
	}
	if len(src) == 0 {
		if r.allowEmpty {
			return nil
		}
		return ErrNoReferer
	}
	var buf [253]byte
	host, ok := refererHost(buf[:0], src)
	if !ok {
		return ErrDomain
	}
	for i := range r.hosts {
		if r.hosts[i].match(host) {
			return nil
		}
	}
	return ErrDomain
}

// refererHost appends the lower-cased host of an absolute URL (`https://user@Host:8080/path`) to dst, which has
// room for the longest DNS name; it reports false for anything else.
func refererHost(dst, u []byte) ([]byte, bool) {
	i := 0
	for i < len(u) && u[i] != ':' && u[i] != '/' {
		i++
	}
	if i == 0 || i+3 > len(u) || string(u[i:i+3]) != "://" {
		return nil, false
	}
	rest := u[i+3:]
	end := len(rest)
	for j, c := range rest {
		if c == '/' || c == '?' || c == '#' {
			end = j
			break
		}
	}
	auth := rest[:end]
	for j := len(auth) - 1; j >= 0; j-- {
		if auth[j] == '@' {
			auth = auth[j+1:]
			break
		}
	}
	if len(auth) > 0 && auth[0] == '[' {
		// An IPv6 literal: `[::1]:8080`.
		for j, c := range auth {
			if c == ']' {
				auth = auth[:j+1]
				break
			}
		}
	} else {
		for j := len(auth) - 1; j >= 0; j-- {
			if auth[j] == ':' {
				auth = auth[:j]
				break
			}
		}
	}
	// A trailing dot names the same host.
	if n := len(auth); n > 0 && auth[n-1] == '.' {
		auth = auth[:n-1]
	}
	if len(auth) == 0 || len(auth) > cap(dst) {
		return nil, false
	}
	for _, c := range auth {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst, true
}
