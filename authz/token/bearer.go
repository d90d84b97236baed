package token

// Bearer returns the credentials of an `Authorization: Bearer TOKEN` header value (scheme case-insensitive,
// RFC 6750), trimmed of spaces and tabs; ok is false when h is not a Bearer header. The result points into h.
func Bearer(h []byte) (cred []byte, ok bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) {
		return nil, false
	}
	for i := 0; i < len(scheme); i++ {
		c := h[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != scheme[i] {
			return nil, false
		}
	}
	h = h[len(scheme):]
	for len(h) > 0 && (h[0] == ' ' || h[0] == '\t') {
		h = h[1:]
	}
	for len(h) > 0 && (h[len(h)-1] == ' ' || h[len(h)-1] == '\t') {
		h = h[:len(h)-1]
	}
	return h, true
}
