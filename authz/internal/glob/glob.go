// Package glob matches channel names and user agents against `*` and `?` patterns without allocating.
package glob

// Match reports whether name matches pattern, where `*` matches any run of bytes (slashes included, so
// `sport/*` covers every channel under sport/) and `?` matches one byte. It is iterative with a single
// backtrack point, so it runs in O(len(pattern)*len(name)) worst case with no allocation, whatever a token's
// streams claim holds.
func Match(pattern string, name []byte) bool {
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == name[n]):
			p++
			n++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
