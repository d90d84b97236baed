package token

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hlsedge/hlsedge/authz/internal/glob"
)

// JWTVerifier checks a JWT's signature against the configured keys and its registered claims (exp, nbf, iss,
// aud). It is built once per config: parser, allow-list and keys are fixed, so a request only parses. With a
// JWKS it refreshes the keys in the background until Close.
type JWTVerifier struct {
	parser   *jwt.Parser
	allowed  map[string]algFamily
	hmac     hmacKeys
	src      *keySource // nil when no algorithm needs a public key
	issuer   string
	audience string
	leeway   time.Duration
	keyfunc  jwt.Keyfunc
}

// NewJWTVerifier reads the secret and the key files and, with a JWKS, loads it and starts its refresh. cfg has
// had SetDefaults and Validate.
func NewJWTVerifier(cfg *JWTConfig, log *slog.Logger) (*JWTVerifier, error) {
	return newJWTVerifier(cfg, log, nil)
}

// newJWTVerifier is NewJWTVerifier with a channel that hears of each background JWKS load, for tests.
func newJWTVerifier(cfg *JWTConfig, log *slog.Logger, loaded chan<- struct{}) (*JWTVerifier, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v := &JWTVerifier{allowed: map[string]algFamily{}, issuer: cfg.Issuer, audience: cfg.Audience, leeway: *cfg.Leeway}
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
		keys, err := cfg.HMACKeys("jwt")
		if err != nil {
			return nil, err
		}
		v.hmac = newHMACKeys(keys)
	}
	if needKeys {
		src, err := newKeySource(cfg, log, loaded)
		if err != nil {
			return nil, err
		}
		v.src = src
	}
	// WithoutClaimsValidation: time claims are checked against the caller's `now` below, and the library's lazily
	// built validator is not safe to share between goroutines.
	v.parser = jwt.NewParser(jwt.WithValidMethods(cfg.Algorithms), jwt.WithoutClaimsValidation())
	v.keyfunc = v.keyFor
	return v, nil
}

// Close stops the JWKS refresh.
func (v *JWTVerifier) Close() {
	if v.src != nil {
		v.src.close()
	}
}

// Leeway is the clock skew allowed on exp, nbf and iat.
func (v *JWTVerifier) Leeway() time.Duration { return v.leeway }

// Verify decodes tok's payload into claims and checks its signature, expiry (required), not-before, issue time,
// issuer and audience at now. Which claims open what is the caller's to check.
func (v *JWTVerifier) Verify(tok string, claims jwt.Claims, now time.Time) (Verified, error) {
	out, err := v.verify(tok, claims, now, false)
	if err == nil {
		out.Fingerprint = FingerprintOf([]byte(tok))
	}
	return out, err
}

func (v *JWTVerifier) verify(tok string, claims jwt.Claims, now time.Time, allowNoExp bool) (Verified, error) {
	out := Verified{Kind: KindJWT}
	t, err := v.parser.ParseWithClaims(tok, claims, v.keyfunc)
	if err != nil {
		return out, v.mapError(t, err)
	}
	out.Key = v.keyRef(t)
	exp, err := claims.GetExpirationTime()
	if err != nil {
		return out, ErrClaim
	}
	if exp == nil {
		if !allowNoExp {
			return out, ErrNoExpiry
		}
	} else {
		until := exp.Add(v.leeway)
		if !now.Before(until) {
			return out, ErrExpired
		}
		out.Expires = exp.Unix()
		out.Until = until.UnixNano()
	}
	nbf, err := claims.GetNotBefore()
	if err != nil {
		return out, ErrClaim
	}
	if nbf != nil && now.Add(v.leeway).Before(nbf.Time) {
		return out, ErrNotYetValid
	}
	// RFC 8725 §3.10 asks for every claim to be checked: an issuer's clock far ahead, or a token minted for
	// later use, is refused rather than accepted early.
	iat, err := claims.GetIssuedAt()
	if err != nil {
		return out, ErrClaim
	}
	if iat != nil && now.Add(v.leeway).Before(iat.Time) {
		return out, ErrIssuedInFuture
	}
	if v.issuer != "" {
		iss, err := claims.GetIssuer()
		if err != nil || iss != v.issuer {
			return out, ErrIssuer
		}
	}
	if v.audience != "" {
		aud, err := claims.GetAudience()
		if err != nil {
			return out, ErrAudience
		}
		found := false
		for _, a := range aud {
			found = found || a == v.audience
		}
		if !found {
			return out, ErrAudience
		}
	}
	return out, nil
}

// keyFor hands the parser a key of the family the algorithm demands and nothing else: an HMAC secret never meets
// an RS256 token and a public key is never an HMAC secret. Header members that name keys (jku, x5u, jwk, x5c)
// are ignored: only configured keys verify.
func (v *JWTVerifier) keyFor(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	fam, ok := v.allowed[alg]
	if !ok {
		return nil, ErrAlgorithm
	}
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 §4.1.11: extensions we do not understand must fail the token.
		return nil, ErrMalformed
	}
	var kid string
	if raw, ok := t.Header["kid"]; ok {
		if kid, ok = raw.(string); !ok {
			return nil, ErrMalformed
		}
	}
	if fam == famHMAC {
		return v.hmac.candidates(kid)
	}
	if v.src == nil {
		return nil, ErrNoKey
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

// mapError turns the library's errors into our sentinels. The library's messages are never passed on: they
// are not part of any contract.
func (v *JWTVerifier) mapError(t *jwt.Token, err error) error {
	for _, s := range []error{ErrUnknownKey, ErrNoKey, ErrKeyAlgMismatch, ErrAlgorithm, ErrMalformed, ErrClaim} {
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
		// An unknown or missing `alg`, `none` included.
		return ErrAlgorithm
	}
	return ErrMalformed
}

// AccessVerifier verifies the JWTs that open channels: a JWTVerifier's checks, then the access claims (the
// channels, the client address, the user and their session limit).
type AccessVerifier struct {
	jwt *JWTVerifier
	cfg AccessConfig
}

// NewAccessVerifier builds the verifier of keys with the access claims of access; both have had SetDefaults
// and keys has had Validate.
func NewAccessVerifier(keys *JWTConfig, access *AccessConfig, log *slog.Logger) (*AccessVerifier, error) {
	v, err := NewJWTVerifier(keys, log)
	if err != nil {
		return nil, err
	}
	return &AccessVerifier{jwt: v, cfg: *access}, nil
}

// Close stops the JWKS refresh.
func (v *AccessVerifier) Close() { v.jwt.Close() }

// Verify checks one JWT for one channel and client at now.
func (v *AccessVerifier) Verify(tok, channel []byte, ip netip.Addr, now time.Time, out *Verified) error {
	claims := jwt.MapClaims{}
	res, err := v.jwt.verify(string(tok), claims, now, v.cfg.AllowNoExp)
	if err != nil {
		return err
	}
	c := &v.cfg.Claims
	switch s := claims[c.Streams].(type) {
	case nil:
		if _, present := claims[c.Streams]; present || !v.cfg.AllowMissingStreams {
			return ErrNoStreams
		}
	case string:
		if !glob.Match(s, channel) {
			return ErrWrongChannel
		}
	case []any:
		ok := false
		for _, e := range s {
			p, isStr := e.(string)
			if !isStr {
				return ErrClaim
			}
			if glob.Match(p, channel) {
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
		res.IPBound = true
	default:
		return ErrClaim
	}

	switch s := claims[c.User].(type) {
	case nil:
	case string:
		if len(s) > MaxUserIDBytes {
			return ErrUserIDTooLong
		}
		res.UserID = s
	default:
		return ErrClaim
	}

	switch n := claims[c.MaxSessions].(type) {
	case nil:
	case float64:
		if n < 0 || n > 1e6 || n != math.Trunc(n) {
			return ErrClaim
		}
		res.MaxSessions = int(n)
	default:
		return ErrClaim
	}
	res.Fingerprint = FingerprintOf(tok)
	*out = res
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
