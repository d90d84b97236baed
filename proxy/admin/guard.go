package admin

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"mime"
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
	want := s.conf().token
	if len(want) == 0 {
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
	return subtle.ConstantTimeCompare(got, want) == 1
}

// changes guards a handler that changes state against other sites' pages. The operator's browser holds the admin
// credentials (HTTP Basic, sent with every request to the listener), so without this a page on any site could
// make that browser POST a ban. Two checks close it:
//   - a request a browser marks as coming from another site (Sec-Fetch-Site, or an Origin that is not this host)
//     is refused with 403;
//   - the body must be application/json. An HTML form can only send urlencoded, multipart or text/plain bodies;
//     a page's fetch with application/json needs a CORS preflight, which this listener never approves.
//
// A DELETE without a body needs no Content-Type, but one that names another type is refused all the same.
func (s *Server) changes(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.crossSite.Check(r); err != nil {
			s.fail(w, r, http.StatusForbidden, "cross-site request refused: "+err.Error(),
				"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
			return
		}
		ct := r.Header.Get("Content-Type")
		if ct == "" && r.Method == http.MethodDelete && r.ContentLength == 0 {
			next(w, r)
			return
		}
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			s.fail(w, r, http.StatusUnsupportedMediaType, "a request that changes state must be Content-Type: application/json")
			return
		}
		next(w, r)
	}
}
