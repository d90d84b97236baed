package playlist

import (
	"fmt"
	"net/url"
	"strings"
)

// DefaultMaxSize is the playlist size limit when Options.MaxSize is zero. A 4 MiB playlist is a multi-hour
// VOD with tens of thousands of segments; anything bigger is almost surely not a playlist.
const DefaultMaxSize = 4 << 20

// maxMaxSize keeps every offset of a template within uint32.
const maxMaxSize = 1 << 30

// Options configure a Rewriter once at config time.
type Options struct {
	// ParamNames are the query parameter names the edge owns, e.g. {"token"} or {"md5", "expires"}.
	// A parameter with one of these names already present in a playlist URI is removed at parse time, so the
	// parameters appended for the viewer replace it instead of duplicating it. Names are compared byte for byte.
	ParamNames []string
	// OriginHosts are the hosts ("origin.example.com", any port) or host:port pairs ("10.0.0.5:8000") whose
	// absolute URIs are turned into edge URIs. Case-insensitive; an entry with port 80 or 443 also matches a
	// URI that leaves out that scheme's default port.
	OriginHosts []string
	// PublicBase is what replaces "scheme://origin-host" in an origin-absolute URI. Empty makes such URIs
	// path-absolute ("/play/a001/x.ts"); otherwise an http(s) URL without query, e.g. "https://edge.example.com".
	PublicBase string
	// MaxSize is the largest playlist Parse accepts, in bytes; 0 means DefaultMaxSize.
	MaxSize int
}

// Rewriter turns origin playlists into Templates. It is immutable and safe for concurrent use.
type Rewriter struct {
	params     []string
	origins    []originHost
	publicBase string
	maxSize    int
}

type originHost struct {
	host string // lower case; IPv6 literals keep their brackets
	port string // "" matches any port
}

// NewRewriter validates opts and returns a Rewriter.
func NewRewriter(opts Options) (*Rewriter, error) {
	r := &Rewriter{maxSize: opts.MaxSize}
	switch {
	case opts.MaxSize < 0:
		return nil, fmt.Errorf("'MaxSize' must not be negative, got %d", opts.MaxSize)
	case opts.MaxSize > maxMaxSize:
		return nil, fmt.Errorf("'MaxSize' must not exceed %d, got %d", maxMaxSize, opts.MaxSize)
	case opts.MaxSize == 0:
		r.maxSize = DefaultMaxSize
	}
	for i, name := range opts.ParamNames {
		if name == "" {
			return nil, fmt.Errorf("'ParamNames[%d]' must not be empty", i)
		}
		if j := strings.IndexAny(name, "=&?#\" \t\r\n"); j >= 0 {
			return nil, fmt.Errorf("'ParamNames[%d]' must not contain %q, got %q", i, name[j], name)
		}
		r.params = append(r.params, name)
	}
	for i, h := range opts.OriginHosts {
		o, err := parseOriginHost(h)
		if err != nil {
			return nil, fmt.Errorf("'OriginHosts[%d]' %w", i, err)
		}
		r.origins = append(r.origins, o)
	}
	if opts.PublicBase != "" {
		u, err := url.Parse(opts.PublicBase)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(opts.PublicBase, "\"\r\n\t ") {
			return nil, fmt.Errorf("'PublicBase' must be an http(s) URL without user, query or fragment, got %q", opts.PublicBase)
		}
		// The URI path that follows always starts with '/', so a trailing one here would double it.
		r.publicBase = strings.TrimRight(opts.PublicBase, "/")
	}
	return r, nil
}

func parseOriginHost(s string) (originHost, error) {
	if s == "" || strings.ContainsAny(s, "/?#@ \t\r\n\"") {
		return originHost{}, fmt.Errorf("must be host or host:port without scheme or path, got %q", s)
	}
	host, port := splitHostPort(s)
	if host == "" || strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		return originHost{}, fmt.Errorf("must be host or host:port (IPv6 in brackets), got %q", s)
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return originHost{}, fmt.Errorf("must have a numeric port, got %q", s)
		}
	}
	return originHost{host: strings.ToLower(host), port: port}, nil
}

// splitHostPort splits "host", "host:port", "[v6]" and "[v6]:port"; unlike net.SplitHostPort a missing port
// is not an error and brackets are kept.
func splitHostPort[T string | []byte](s T) (host, port T) {
	if len(s) > 0 && s[0] == '[' {
		for i := 0; i < len(s); i++ {
			if s[i] == ']' {
				if i+1 < len(s) && s[i+1] == ':' {
					return s[:i+1], s[i+2:]
				}
				if i+1 == len(s) {
					return s, s[len(s):]
				}
				break
			}
		}
		return s, s[len(s):]
	}
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ':' {
			return s[:i], s[i+1:]
		}
	}
	return s, s[len(s):]
}
