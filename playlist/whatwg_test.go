package playlist

import (
	"strconv"
	"strings"
)

// browserURL is what the WHATWG URL standard's basic URL parser makes of a reference resolved against an http(s)
// base, as far as the host goes.
type browserURL struct {
	// kind is "relative" (the host is the base's), "host" (the reference names its own), "fail" (the parser
	// fails: no request) or "other" (a scheme that is not http or https).
	kind   string
	scheme string // lower case
	// host is lower-cased host[:port] without the scheme's default port, for kind "host".
	host string
	// exotic is set when the host is spelled in a way this oracle does not normalise (percent-escapes, non-ASCII,
	// IPv4 numbers other than dotted decimal, IPv6): it names some host, just not one we can compare.
	exotic bool
}

// whatwgResolve is the oracle the rewriter is checked against: a transcription of the basic URL parser's states
// (https://url.spec.whatwg.org/#concept-basic-url-parser) for a base "baseScheme://..." with a host, sharing no
// code with resolve. The node corpus test checks it against Node's URL.
func whatwgResolve(input, baseScheme string) browserURL {
	// Strip leading and trailing C0 control or space; remove all ASCII tab or newline.
	input = strings.TrimFunc(input, func(r rune) bool { return r <= ' ' })
	input = strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(input)
	const eof = -1
	at := func(p int) int {
		if p < len(input) {
			return int(input[p])
		}
		return eof
	}
	isAlpha := func(c int) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
	lower := func(c int) byte {
		if 'A' <= c && c <= 'Z' {
			return byte(c + 'a' - 'A')
		}
		return byte(c)
	}
	const (
		schemeStart = iota
		schemeState
		noScheme
		specialRelativeOrAuthority
		relative
		relativeSlash
		specialAuthoritySlashes
		specialAuthorityIgnoreSlashes
		authority
	)
	state, scheme, atSignSeen := schemeStart, "", false
	var buf []byte
	for p := 0; ; p++ {
		c := at(p)
		switch state {
		case schemeStart:
			if isAlpha(c) {
				buf, state = append(buf, lower(c)), schemeState
			} else {
				state, p = noScheme, p-1
			}
		case schemeState:
			switch {
			case isAlpha(c), '0' <= c && c <= '9', c == '+', c == '-', c == '.':
				buf = append(buf, lower(c))
			case c == ':':
				scheme, buf = string(buf), nil
				switch scheme {
				case "http", "https":
				default:
					// Non-special schemes, and ftp, ws, wss and file: never fetched by a player with our token.
					return browserURL{kind: "other", scheme: scheme}
				}
				if scheme == baseScheme {
					state = specialRelativeOrAuthority
				} else {
					state = specialAuthoritySlashes
				}
			default:
				// Not a scheme: start over without one.
				buf, state, p = nil, noScheme, -1
			}
		case noScheme:
			// The base is special and not opaque.
			scheme, state, p = baseScheme, relative, p-1
		case specialRelativeOrAuthority:
			if c == '/' && at(p+1) == '/' {
				state, p = specialAuthorityIgnoreSlashes, p+1
			} else {
				state, p = relative, p-1
			}
		case relative:
			if c == '/' || c == '\\' {
				state = relativeSlash
			} else {
				return browserURL{kind: "relative", scheme: baseScheme}
			}
		case relativeSlash:
			if c == '/' || c == '\\' {
				state = specialAuthorityIgnoreSlashes
			} else {
				return browserURL{kind: "relative", scheme: baseScheme}
			}
		case specialAuthoritySlashes:
			if c == '/' && at(p+1) == '/' {
				state, p = specialAuthorityIgnoreSlashes, p+1
			} else {
				state, p = specialAuthorityIgnoreSlashes, p-1
			}
		case specialAuthorityIgnoreSlashes:
			if c != '/' && c != '\\' {
				state, p = authority, p-1
			}
		case authority:
			switch c {
			case '@':
				buf, atSignSeen = nil, true // what came before is userinfo
			case eof, '/', '?', '#', '\\':
				if atSignSeen && len(buf) == 0 {
					return browserURL{kind: "fail", scheme: scheme}
				}
				return hostState(scheme, string(buf))
			default:
				buf = append(buf, byte(c))
			}
		}
	}
}

// hostState is the host and port states for a special URL's authority without userinfo.
func hostState(scheme, s string) browserURL {
	u := browserURL{kind: "fail", scheme: scheme}
	host, port, inBrackets := s, "", false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			inBrackets = true
		case ']':
			inBrackets = false
		case ':':
			if !inBrackets {
				host, port = s[:i], s[i+1:]
				i = len(s)
			}
		}
	}
	if host == "" {
		return u
	}
	// The port is decimal digits, any number of leading zeros included; empty means the default.
	n := 0
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return u
		}
		if n = n*10 + int(port[i]-'0'); n > 65535 {
			return u
		}
	}
	switch {
	case port == "", scheme == "http" && n == 80, scheme == "https" && n == 443:
		port = ""
	default:
		port = strconv.Itoa(n)
	}
	h := strings.ToLower(host)
	switch {
	case strings.HasPrefix(h, "["):
		if !strings.HasSuffix(h, "]") {
			return u
		}
		u.exotic = h != "[::1]"
	case strings.ContainsAny(h, "%") || strings.IndexFunc(h, func(r rune) bool { return r >= 0x80 }) >= 0 ||
		strings.HasPrefix(h, "xn--") || strings.Contains(h, ".xn--"):
		// Percent-decoding and IDNA (which can also fail) are not transcribed.
		u.exotic = true
	default:
		// Forbidden domain code points fail the parser.
		for i := 0; i < len(h); i++ {
			if c := h[i]; c <= ' ' || c == 0x7f || strings.IndexByte("#/:<>?@[\\]^|", c) >= 0 {
				return u
			}
		}
		if endsInNumber(h) {
			u.exotic = !isDottedQuad(h)
		}
	}
	u.kind, u.host = "host", h
	if port != "" {
		u.host += ":" + port
	}
	return u
}

// endsInNumber is the standard's test for an IPv4 address in any of its spellings.
func endsInNumber(h string) bool {
	labels := strings.Split(h, ".")
	if labels[len(labels)-1] == "" {
		if len(labels) == 1 {
			return false
		}
		labels = labels[:len(labels)-1]
	}
	last := labels[len(labels)-1]
	if last != "" && strings.Trim(last, "0123456789") == "" {
		return true
	}
	return strings.HasPrefix(last, "0x") && strings.Trim(last[2:], "0123456789abcdef") == ""
}

func isDottedQuad(h string) bool {
	labels := strings.Split(h, ".")
	if len(labels) != 4 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 3 || l != "0" && l[0] == '0' || strings.Trim(l, "0123456789") != "" || len(l) == 3 && l > "255" {
			return false
		}
	}
	return true
}

// landsOn reports whether a player that fetched the playlist from an http or an https URL on some host, and
// substituted its variables, sends a request for ref to that same host, or to public (a PublicBase host).
func landsOn(ref, public string) bool {
	for _, base := range []string{"http", "https"} {
		u := whatwgResolve(ref, base)
		if u.kind != "relative" && !(u.kind == "host" && !u.exotic && public != "" && u.host == public) {
			return false
		}
	}
	return true
}
