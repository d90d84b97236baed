package bench

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Several edges behind one run: viewers and participants are dealt to them round robin, and the reports show
// each edge's share, so a fleet can be loaded as its balancer would load it.

// validateEdges checks that every edge is a bare base URL in one of the schemes.
func validateEdges(edges []string, schemes ...string) error {
	for i, e := range edges {
		u, err := url.Parse(e)
		if err != nil || !slices.Contains(schemes, u.Scheme) || u.Host == "" || u.Path != "" && u.Path != "/" ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("%w: 'edges[%d]' must be a bare %s://host:port URL, got %q", ErrInvalidConfig, i, schemes[0], e)
		}
	}
	return nil
}

// onEdge returns u with its scheme and host replaced by edge's; path and query stay.
func onEdge(u, edge string) string {
	edge = strings.TrimSuffix(edge, "/")
	i := strings.Index(u, "://")
	if i < 0 {
		return edge + u
	}
	rest := u[i+3:]
	j := strings.IndexAny(rest, "/?#")
	if j < 0 {
		return edge
	}
	return edge + rest[j:]
}

// SplitList splits comma-separated flag values, dropping blanks: "--edge a,b --edge c" gives a, b, c.
func SplitList(vals ...string) []string {
	var out []string
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}
