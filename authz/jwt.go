package authz

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// verified is what a verifier learned from an authentic token, in the form the decision cache keeps.
type verified struct {
	userID      string
	expires     int64 // unix seconds as the token states it; 0: none
	until       int64 // unix nanos after which the decision must be re-made (expiry plus leeway); 0: none
	maxSessions int
	ipBound     bool
	sessionID   uint64
	unique      bool // a backend's X-Unique
}

// jwtVerifier is built once per config: parser, allow-list and keys are fixed, so a request only parses.
type jwtVerifier struct {
	parser  *jwt.Parser
	allowed map[string]algFamily
	secret  []byte
	src     *keySource
	cfg     JWTConfig
	leeway  time.Duration
	keyfunc jwt.Keyfunc
}

func newJWTVerifier(cfg *JWTConfig, log *slog.Logger) (*jwtVerifier, error) {
	v := &jwtVerifier{cfg: *cfg, allowed: map[string]algFamily{}, leeway: *cfg.Leeway}
	needKeys, needSecret := false, false
	for _, a := range cfg.Algorithms {
		fam := algFamilyOf(a)
		if fam == famNone {
			return nil, fmt.Errorf("%w: %q", ErrUnsupportedAlgo, a)
		}
		v.allowed[a] = fam
		needKeys = needKeys || fam != famHMAC
		needSecret = needSecret || fam == famHMAC
	}
	if needSecret {
		s, err := readSecret(cfg.Secret, cfg.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("secret_file: %w", err)
		}
		v.secret = s
	}
	if needKeys {
		src, err := newKeySource(cfg, log)
		if err != nil {
			return nil, err
		}
		v.src = src
	}
	// WithoutClaimsValidation: time claims are checked against the request's `now` below, and the library's lazily
	// built validator is not safe to share between goroutines.
	v.parser = jwt.NewParser(jwt.WithValidMethods(cfg.Algorithms), jwt.WithoutClaimsValidation())
	v.keyfunc = v.keyFor
	return v, nil
}

func (v *jwtVerifier) close() {
	if v.src != nil {
		v.src.close()
	}
}

// keyFor hands the parser a key of the family the algorithm demands and nothing else: an HMAC secret never meets
// an RS256 token and a public key is never an HMAC secret. Header members that name keys (jku, x5u, jwk, x5c)
// are ignored: only configured keys verify.
func (v *jwtVerifier) keyFor(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	fam, ok := v.allowed[alg]
	if !ok {
		return nil, ErrAlgorithm
	}
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 §4.1.11: extensions we do not understand must fail the token.
		return nil, ErrMalformed
	}
	if fam == famHMAC {
		return v.secret, nil
	}
	if v.src == nil {
		return nil, ErrNoKey
	}
	var kid string
	if raw, ok := t.Header["kid"]; ok {
		if kid, ok = raw.(string); !ok {
			return nil, ErrMalformed
		}
	}
	ks := v.src.keys()
	if kid != "" {
		if k, ok := ks.byKID[kid]; ok {
			if !k.fits(alg, fam) {
				return nil, ErrKeyAlgMismatch
			}
			return k.key, nil
		}
	}
	var set jwt.VerificationKeySet
	for _, k := range ks.anyKID {
		if k.fits(alg, fam) {
			set.Keys = append(set.Keys, k.key)
		}
	}
	if kid == "" {
		// Without a kid, every key of the right family may be tried; the library stops at the first that verifies.
		for _, k := range ks.byKID {
			if k.fits(alg, fam) {
				set.Keys = append(set.Keys, k.key)
			}
		}
	}
	switch len(set.Keys) {
	case 0:
		if kid != "" {
			v.src.wantRefresh()
			return nil, ErrUnknownKey
		}
		return nil, ErrNoKey
	case 1:
		return set.Keys[0], nil
	}
	return set, nil
}

// verify checks signature, time, issuer, audience and the access claims of one JWT for one channel and client.
func (v *jwtVerifier) verify(tok []byte, channel []byte, ip netip.Addr, now time.Time, out *verified) error {
	claims := jwt.MapClaims{}
	t, err := v.parser.ParseWithClaims(string(tok), claims, v.keyfunc)
	if err != nil {
		return v.mapError(t, err)
	}
	c := &v.cfg.Claims

	exp, err := claims.GetExpirationTime()
	if err != nil {
		return ErrClaim
	}
	if exp == nil {
		if !v.cfg.AllowNoExp {
			return ErrNoExpiry
		}
	} else {
		until := exp.Add(v.leeway)
		if !now.Before(until) {
			return ErrExpired
		}
		out.expires = exp.Unix()
		out.until = until.UnixNano()
	}
	nbf, err := claims.GetNotBefore()
	if err != nil {
		return ErrClaim
	}
	if nbf != nil && now.Add(v.leeway).Before(nbf.Time) {
		return ErrNotYetValid
	}
	if v.cfg.Issuer != "" {
		iss, err := claims.GetIssuer()
		if err != nil || iss != v.cfg.Issuer {
			return ErrIssuer
		}
	}
	if v.cfg.Audience != "" {
		aud, err := claims.GetAudience()
		if err != nil {
			return ErrAudience
		}
		found := false
		for _, a := range aud {
			found = found || a == v.cfg.Audience
		}
		if !found {
			return ErrAudience
		}
	}

	switch s := claims[c.Streams].(type) {
	case nil:
		if _, present := claims[c.Streams]; present || !v.cfg.AllowMissingStreams {
			return ErrNoStreams
		}
	case string:
		if !globMatch(s, channel) {
			return ErrWrongChannel
		}
	case []any:
		ok := false
		for _, e := range s {
			p, isStr := e.(string)
			if !isStr {
				return ErrClaim
			}
			if globMatch(p, channel) {
				ok = true
				break
			}
		}
		if !ok {
			return ErrWrongChannel
		}
	default:
		return ErrClaim
	}

	switch s := claims[c.IP].(type) {
	case nil:
		if v.cfg.RequireIP {
			return ErrNoIP
		}
	case string:
		if err := matchIP(s, ip); err != nil {
			return err
		}
		out.ipBound = true
	default:
		return ErrClaim
	}

	switch s := claims[c.User].(type) {
	case nil:
	case string:
		if len(s) > maxUserIDBytes {
			return ErrUserIDTooLong
		}
		out.userID = s
	default:
		return ErrClaim
	}

	switch n := claims[c.MaxSessions].(type) {
	case nil:
	case float64:
		if n < 0 || n > 1e6 || n != math.Trunc(n) {
			return ErrClaim
		}
		out.maxSessions = int(n)
	default:
		return ErrClaim
	}
	return nil
}

// matchIP compares the token's IP or CIDR with the client's.
func matchIP(s string, ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Unmap().WithZone("") != ip {
			return ErrWrongIP
		}
		return nil
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		if !p.Masked().Contains(ip) {
			return ErrWrongIP
		}
		return nil
	}
	return ErrClaim
}

// mapError turns the library's errors into our sentinels. The library's messages are never passed on: they
// are not part of any contract.
func (v *jwtVerifier) mapError(t *jwt.Token, err error) error {
	for _, s := range []error{ErrUnknownKey, ErrNoKey, ErrKeyAlgMismatch, ErrAlgorithm, ErrMalformed} {
		if errors.Is(err, s) {
			return s
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ErrMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if t != nil && t.Method != nil {
			if _, ok := v.allowed[t.Method.Alg()]; !ok {
				return ErrAlgorithm
			}
		}
		return ErrSignature
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// An unknown or missing `alg`.
		return ErrAlgorithm
	}
	return ErrMalformed
}
