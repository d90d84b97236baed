package proxy

import "bytes"

// The query of a viewer's request is usually the token and nothing else. fasthttp's QueryArgs parses every
// argument into copies on first use, which cost the playlist path as much as the rewrite; these two read the raw
// query instead. They give fasthttp's answer, or say they cannot when an argument is percent- or plus-encoded
// and only decoding it would tell; the caller then asks QueryArgs (the slow path).

// queryArgAt is QueryArgs().Peek(name) on the raw query, as a place in q: the first argument named name has the
// value q[start:end], or there is none (start < 0).
func queryArgAt(q []byte, name string) (start, end int, ok bool) {
	at := 0 // where part starts in q
	for at < len(q) {
		part, _ := cutArg(q[at:])
		key, val := cutValue(part)
		if encoded(key) {
			// It may decode to name.
			return -1, -1, false
		}
		if string(key) != name {
			at += len(part) + 1
			continue
		}
		if encoded(val) {
			return -1, -1, false
		}
		start = at + len(part) - len(val)
		return start, start + len(val), true
	}
	return -1, -1, true
}

// onlyTokenArgs reports that every argument of the raw query is a token parameter, so that the origin gets no
// query at all (appendOriginQuery's answer then). false means there are others, or it cannot tell.
func onlyTokenArgs(q []byte, isToken func([]byte) bool) bool {
	for len(q) > 0 {
		var part []byte
		part, q = cutArg(q)
		if len(part) == 0 {
			// fasthttp skips empty arguments ("a=1&&b=2").
			continue
		}
		key, _ := cutValue(part)
		if encoded(key) || !isToken(key) {
			return false
		}
	}
	return true
}

func cutArg(q []byte) (part, rest []byte) {
	if i := bytes.IndexByte(q, '&'); i >= 0 {
		return q[:i], q[i+1:]
	}
	return q, nil
}

func cutValue(arg []byte) (key, value []byte) {
	if i := bytes.IndexByte(arg, '='); i >= 0 {
		return arg[:i], arg[i+1:]
	}
	return arg, nil
}

func encoded(b []byte) bool { return bytes.IndexByte(b, '%') >= 0 || bytes.IndexByte(b, '+') >= 0 }
