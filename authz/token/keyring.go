package token

import (
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// Several keys per verifier let an operator rotate a key without refusing a token signed with the old one:
// the new key is added, every node reloaded, the signing side switched, and the old key removed once the
// longest token signed with it has expired. A key with an id (`kid`) verifies only tokens naming it, or naming
// no key at all; a key without one verifies any token, so a single key keeps working for issuers that send a
// kid of their own.

// hmacKeys are a JWT verifier's HMAC keys with the candidate sets precomputed, so that keyFor allocates nothing.
type hmacKeys struct {
	keys  []Key
	byKID map[string]*Key
	// noKID verifies a token without a kid (every key), anonymous one whose kid names no key (the keys without
	// an id); each is nil (none), a []byte (one) or a jwt.VerificationKeySet.
	noKID, anonymous any
}

func newHMACKeys(keys []Key) hmacKeys {
	h := hmacKeys{keys: keys, byKID: map[string]*Key{}}
	var all, anon []Key
	for i := range keys {
		k := &keys[i]
		all = append(all, *k)
		if k.ID == "" {
			anon = append(anon, *k)
		} else {
			h.byKID[k.ID] = k
		}
	}
	h.noKID, h.anonymous = keySetOf(all), keySetOf(anon)
	return h
}

func keySetOf(keys []Key) any {
	switch len(keys) {
	case 0:
		return nil
	case 1:
		return keys[0].Secret
	}
	var set jwt.VerificationKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, k.Secret)
	}
	return set
}

// candidates is what keyFor hands the parser for an HMAC token with this kid ("" when it has none).
func (h *hmacKeys) candidates(kid string) (any, error) {
	var c any
	switch {
	case kid == "":
		c = h.noKID
	case h.byKID[kid] != nil:
		return h.byKID[kid].Secret, nil
	default:
		c = h.anonymous
	}
	if c == nil {
		if len(h.keys) > 0 {
			return nil, ErrUnknownKey
		}
		return nil, ErrNoKey
	}
	return c, nil
}

// keyRef names the key that verified t, which the parser does not tell: the only candidate, or the first of
// several whose signature check passes again. It runs after a successful parse only, on the slow path.
func (v *JWTVerifier) keyRef(t *jwt.Token) KeyRef {
	kid, _ := t.Header["kid"].(string)
	fam := v.allowed[t.Method.Alg()]
	var cands []KeyRef
	var keys []any
	if fam == famHMAC {
		if k := v.hmac.byKID[kid]; kid != "" && k != nil {
			return k.Ref
		}
		for i := range v.hmac.keys {
			k := &v.hmac.keys[i]
			if kid == "" || k.ID == "" {
				cands, keys = append(cands, k.Ref), append(keys, k.Secret)
			}
		}
	} else if v.src != nil {
		ks := v.src.keys()
		alg := t.Method.Alg()
		if k, ok := ks.byKID[kid]; kid != "" && ok {
			return k.ref
		}
		for _, k := range ks.anyKID {
			if k.fits(alg, fam) {
				cands, keys = append(cands, k.ref), append(keys, k.key)
			}
		}
		if kid == "" {
			for _, k := range ks.byKID {
				if k.fits(alg, fam) {
					cands, keys = append(cands, k.ref), append(keys, k.key)
				}
			}
		}
	}
	switch len(cands) {
	case 0:
		return 0
	case 1:
		return cands[0]
	}
	text := t.Raw[:strings.LastIndexByte(t.Raw, '.')]
	for i, k := range keys {
		if t.Method.Verify(text, t.Signature, k) == nil {
			return cands[i]
		}
	}
	return 0
}

// HasKey reports whether the key ref names is one of the verifier's keys now (a JWKS key counts while the
// current set holds it).
func (v *JWTVerifier) HasKey(ref KeyRef) bool {
	for i := range v.hmac.keys {
		if v.hmac.keys[i].Ref == ref {
			return true
		}
	}
	if v.src == nil {
		return false
	}
	ks := v.src.keys()
	for _, k := range ks.anyKID {
		if k.ref == ref {
			return true
		}
	}
	for _, k := range ks.byKID {
		if k.ref == ref {
			return true
		}
	}
	return false
}

// HasKey reports whether ref names one of the verifier's keys.
func (v *AccessVerifier) HasKey(ref KeyRef) bool { return v.jwt.HasKey(ref) }
