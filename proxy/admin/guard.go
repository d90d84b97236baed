package admin

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
)

// guarded answers 401 unless the request carries the admin token. Bearer is for scrapers and scripts; Basic makes
// a browser ask for it on the status page.
func (s *Server) guarded(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.authorized(r) {
			next(w, r)
			return
		}
		w.Header().Add("WWW-Authenticate", `Bearer realm="hlsedge admin"`)
		w.Header().Add("WWW-Authenticate", `Basic realm="hlsedge admin", charset="UTF-8"`)
		s.fail(w, r, http.StatusUnauthorized, "admin token required")
	}
}

// authorized checks the admin token in constant time, as "Bearer TOKEN" or as the password of HTTP Basic (any
// user name), which is what a browser can send. Without a configured token the listener is open, which is only
// safe because it defaults to loopback.
func (s *Server) authorized(r *http.Request) bool {
	want := s.cfg.Token
	if want == "" {
		return true
	}
	got := []byte(r.Header.Get("Authorization"))
	const bearer, basic = "Bearer ", "Basic "
	switch {
	case len(got) > len(bearer) && string(got[:len(bearer)]) == bearer:
		got = got[len(bearer):]
	case len(got) > len(basic) && string(got[:len(basic)]) == basic:
		userPass, err := base64.StdEncoding.DecodeString(string(got[len(basic):]))
		i := bytes.IndexByte(userPass, ':')
		if err != nil || i < 0 {
			return false
		}
		got = userPass[i+1:]
	default:
		return false
	}
	return subtle.ConstantTimeCompare(got, []byte(want)) == 1
}
