package bench

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/hlsedge/hlsedge/authz/token"
)

// viewerURL returns viewer i's entry URL: the configured one, or with Mint its channel's URL and a fresh token.
func viewerURL(cfg *HLSConfig, i int, now time.Time) (string, error) {
	m := cfg.Mint
	if m == nil {
		return cfg.URL, nil
	}
	ch := m.Channels[i%len(m.Channels)]
	var ip netip.Addr
	if m.IP != "" {
		ip = netip.MustParseAddr(m.IP) // validated
	}
	var tok string
	var err error
	switch m.Kind {
	case "jwt":
		tok, err = token.MintJWT(token.JWTMint{
			Alg: m.Alg, Key: []byte(m.Secret), Streams: []string{ch},
			Subject: fmt.Sprintf("bench-%d", i), IP: ip, Now: now, TTL: m.TTL,
		})
	case "securetoken":
		// The reference PHP starts the validity 300 s early to absorb clock skew; so do we.
		start := now.Unix() - 300
		ipStr := ""
		if ip.IsValid() {
			ipStr = ip.String()
		}
		tok = token.MintSecureToken(m.Secret, ch, ipStr, start, start+int64(m.TTL/time.Second), token.NewSalt())
	case "edge":
		tok, err = token.MintEdgeToken([]byte(m.Secret), token.EdgeToken{
			Channel: ch, Expires: now.Add(m.TTL).Unix(), IP: ip, SessionID: uint64(i) + 1,
			UserID: fmt.Sprintf("bench-%d", i),
		})
	}
	if err != nil {
		return "", fmt.Errorf("minting a %s token for viewer %d: %w", m.Kind, i, err)
	}
	u := strings.ReplaceAll(cfg.URL, "{channel}", ch)
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + url.QueryEscape(m.Param) + "=" + url.QueryEscape(tok), nil
}

// redactURL drops the query so that reports and logs never carry a token.
func redactURL(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}
