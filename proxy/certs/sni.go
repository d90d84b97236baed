package certs

import (
	"crypto/tls"
	"strings"
	"time"
)

// certSet is one immutable generation of loaded certificates with its SNI index; a reload builds a new one and
// swaps it in, so a handshake reads it without a lock.
type certSet struct {
	// certs are the pairs in config order; the first is the default.
	certs []*tls.Certificate
	// exact maps a lower-case DNS name to the certificates whose leaf lists it, in config order.
	exact map[string][]*tls.Certificate
	// wild maps the parent of a wildcard name ("example.com" for "*.example.com") the same way.
	wild map[string][]*tls.Certificate
	// notAfter is the earliest expiry among the leaves, for the metric an operator alerts on.
	notAfter time.Time
}

func newCertSet(certs []*tls.Certificate) *certSet {
	s := &certSet{
		certs: certs,
		exact: make(map[string][]*tls.Certificate),
		wild:  make(map[string][]*tls.Certificate),
	}
	for _, c := range certs {
		if s.notAfter.IsZero() || c.Leaf.NotAfter.Before(s.notAfter) {
			s.notAfter = c.Leaf.NotAfter
		}
		for _, name := range c.Leaf.DNSNames {
			name = strings.ToLower(strings.TrimSuffix(name, "."))
			if parent, ok := strings.CutPrefix(name, "*."); ok {
				s.wild[parent] = append(s.wild[parent], c)
			} else {
				s.exact[name] = append(s.exact[name], c)
			}
		}
	}
	return s
}

// pick chooses the certificate for a handshake: an exact DNS name from the leaves, then a wildcard one label
// deep (as RFC 6125 matches it), then the default. Clients that send no SNI, IP-address clients among them, get
// the default.
func (s *certSet) pick(hello *tls.ClientHelloInfo) *tls.Certificate {
	name := hello.ServerName
	if name == "" {
		return s.certs[0]
	}
	// Fast path: clients send the name in lower case without a trailing dot, and the lookups below do not
	// allocate. Slow path: normalise first.
	if name[len(name)-1] == '.' || strings.ToLower(name) != name {
		name = strings.ToLower(strings.TrimSuffix(name, "."))
	}
	if c := choose(s.exact[name], hello); c != nil {
		return c
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		if c := choose(s.wild[name[i+1:]], hello); c != nil {
			return c
		}
	}
	return s.certs[0]
}

// choose returns the first candidate the client can use, so that an RSA and an ECDSA certificate for one name
// each go to the clients that support them; if the client supports none, the first is tried anyway.
func choose(cands []*tls.Certificate, hello *tls.ClientHelloInfo) *tls.Certificate {
	switch len(cands) {
	case 0:
		return nil
	case 1:
		return cands[0]
	}
	for _, c := range cands {
		if hello.SupportsCertificate(c) == nil {
			return c
		}
	}
	return cands[0]
}
