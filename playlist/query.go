package playlist

const upperhex = "0123456789ABCDEF"

// AppendQueryParam appends name=value to a query being built in dst, percent-encoding both and adding '&' when
// dst already holds a parameter. Everything but RFC 3986 unreserved characters is encoded, with %20 for space
// rather than '+', because origins and token checkers (Astra, nginx secure_link) do not all decode '+'.
// value may be a string or a []byte, so a token peeked from a request needs no conversion.
func AppendQueryParam[T string | []byte](dst []byte, name string, value T) []byte {
	if n := len(dst); n > 0 && dst[n-1] != '&' && dst[n-1] != '?' {
		dst = append(dst, '&')
	}
	dst = AppendQueryEscape(dst, name)
	dst = append(dst, '=')
	return AppendQueryEscape(dst, value)
}

// AppendQueryEscape percent-encodes s for a query key or value: everything but RFC 3986 unreserved bytes. It is
// the edge's one query escaper, used for child tokens, origin queries and backend calls alike.
func AppendQueryEscape[T string | []byte](dst []byte, s T) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', upperhex[c>>4], upperhex[c&15])
	}
	return dst
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
