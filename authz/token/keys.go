package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// algFamily binds each JWS algorithm to the one key type it may use (RFC 8725 §3.1): the confusion attacks all
// hand one family's key to another family's verifier.
type algFamily uint8

const (
	famNone algFamily = iota
	famHMAC
	famRSA // RS* and PS*
	famP256
	famP384
	famP521
	famEd25519
)

func algFamilyOf(alg string) algFamily {
	switch alg {
	case "HS256", "HS384", "HS512":
		return famHMAC
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return famRSA
	case "ES256":
		return famP256
	case "ES384":
		return famP384
	case "ES512":
		return famP521
	case "EdDSA":
		return famEd25519
	}
	return famNone
}

// minRSABits refuses keys that can be factored today.
const minRSABits = 2048

// pubKey is one verification key with the family it serves and, from a JWK, the algorithm it is pinned to.
type pubKey struct {
	kid string
	alg string // empty: any algorithm of the family
	fam algFamily
	key crypto.PublicKey
	ref KeyRef
}

// newPubKey computes the key's reference once, when the key is loaded: key sets are shared by readers.
func newPubKey(kid, alg string, fam algFamily, key crypto.PublicKey) *pubKey {
	ref := KeyRef(1)
	if der, err := x509.MarshalPKIXPublicKey(key); err == nil {
		ref = RefOf(der)
	}
	return &pubKey{kid: kid, alg: alg, fam: fam, key: key, ref: ref}
}

func (k *pubKey) fits(alg string, fam algFamily) bool {
	return k.fam == fam && (k.alg == "" || k.alg == alg)
}

// keySet is an immutable set of keys; a refresh swaps in a new one.
type keySet struct {
	byKID  map[string]*pubKey
	anyKID []*pubKey // keys without a kid: configured PEMs the operator did not name
}

func newKeySet(keys ...[]*pubKey) *keySet {
	ks := &keySet{byKID: map[string]*pubKey{}}
	for _, list := range keys {
		for _, k := range list {
			if k.kid == "" {
				ks.anyKID = append(ks.anyKID, k)
				continue
			}
			if _, dup := ks.byKID[k.kid]; !dup {
				ks.byKID[k.kid] = k
			}
		}
	}
	return ks
}

func (ks *keySet) len() int { return len(ks.byKID) + len(ks.anyKID) }

// familyOfKey tells which family a public key serves.
func familyOfKey(k crypto.PublicKey) (algFamily, error) {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return famNone, fmt.Errorf("rsa key of %d bits: at least %d needed", k.N.BitLen(), minRSABits)
		}
		return famRSA, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return famP256, nil
		case elliptic.P384():
			return famP384, nil
		case elliptic.P521():
			return famP521, nil
		}
		return famNone, errors.New("unsupported elliptic curve")
	case ed25519.PublicKey:
		return famEd25519, nil
	}
	return famNone, fmt.Errorf("unsupported public key type %T", k)
}

// parsePublicKeyPEM reads every PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE block of a PEM file.
func parsePublicKeyPEM(data []byte) ([]crypto.PublicKey, error) {
	var out []crypto.PublicKey
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		var (
			k   crypto.PublicKey
			err error
		)
		switch b.Type {
		case "PUBLIC KEY":
			k, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			k, err = x509.ParsePKCS1PublicKey(b.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(b.Bytes); err == nil {
				k = c.PublicKey
			}
		default:
			if strings.Contains(b.Type, "PRIVATE") {
				return nil, errors.New("pem holds a private key: give the edge the public key only")
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pem %s: %w", strings.ToLower(b.Type), err)
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, errors.New("no public key in pem")
	}
	return out, nil
}

// ParsePrivateKeyPEM reads a PKCS#8, PKCS#1 RSA or SEC 1 EC private key, for minting test tokens.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no private key in pem")
		}
		switch b.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("pkcs8 private key: %w", err)
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("unsupported private key type %T", k)
			}
			return s, nil
		case "RSA PRIVATE KEY":
			return x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			return x509.ParseECPrivateKey(b.Bytes)
		}
	}
}

// jwk is the subset of RFC 7517/7518/8037 members the edge reads.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// maxJWKSBytes bounds a key set document; real ones are a few KiB.
const maxJWKSBytes = 1 << 20

// parseJWKS decodes a JSON Web Key Set. Keys the edge cannot or must not use (symmetric `oct` keys, encryption
// keys, unknown types, weak RSA) are skipped and counted rather than failing the set, so that an issuer adding a
// new key type does not take every token down.
func parseJWKS(data []byte) (keys []*pubKey, skipped int, err error) {
	if len(data) > maxJWKSBytes {
		return nil, 0, errors.New("jwks too large")
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, 0, fmt.Errorf("jwks: %w", err)
	}
	for _, raw := range doc.Keys {
		var j jwk
		if json.Unmarshal(raw, &j) != nil {
			skipped++
			continue
		}
		k, err := j.publicKey()
		if err != nil {
			skipped++
			continue
		}
		keys = append(keys, k)
	}
	return keys, skipped, nil
}

func (j *jwk) publicKey() (*pubKey, error) {
	if j.Use != "" && j.Use != "sig" {
		return nil, errors.New("not a signature key")
	}
	var (
		key crypto.PublicKey
		err error
	)
	switch j.Kty {
	case "RSA":
		key, err = j.rsa()
	case "EC":
		key, err = j.ec()
	case "OKP":
		key, err = j.okp()
	default:
		// `oct` lands here on purpose: HMAC secrets come from the config only, never from a fetched document.
		return nil, fmt.Errorf("unsupported kty %q", j.Kty)
	}
	if err != nil {
		return nil, err
	}
	fam, err := familyOfKey(key)
	if err != nil {
		return nil, err
	}
	if j.Alg != "" && algFamilyOf(j.Alg) != fam {
		return nil, errors.New("jwk alg does not match its key type")
	}
	return newPubKey(j.Kid, j.Alg, fam, key), nil
}

func b64url(s string) ([]byte, error) {
	// Some issuers pad; RFC 7515 says they must not, but refusing them helps nobody.
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func (j *jwk) rsa() (crypto.PublicKey, error) {
	n, err := b64url(j.N)
	if err != nil || len(n) == 0 {
		return nil, errors.New("bad rsa modulus")
	}
	e, err := b64url(j.E)
	if err != nil || len(e) == 0 || len(e) > 4 {
		return nil, errors.New("bad rsa exponent")
	}
	var exp int
	for _, b := range e {
		exp = exp<<8 | int(b)
	}
	if exp < 3 || exp%2 == 0 {
		return nil, errors.New("bad rsa exponent")
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}, nil
}

func (j *jwk) ec() (crypto.PublicKey, error) {
	var (
		curve elliptic.Curve
		size  int
	)
	switch j.Crv {
	case "P-256":
		curve, size = elliptic.P256(), 32
	case "P-384":
		curve, size = elliptic.P384(), 48
	case "P-521":
		curve, size = elliptic.P521(), 66
	default:
		return nil, fmt.Errorf("unsupported curve %q", j.Crv)
	}
	x, err1 := b64url(j.X)
	y, err2 := b64url(j.Y)
	if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
		return nil, errors.New("bad ec coordinates")
	}
	pt := make([]byte, 0, 1+2*size)
	pt = append(append(append(pt, 4), x...), y...)
	// ParseUncompressedPublicKey checks the point is on the curve, closing invalid-curve attacks.
	return ecdsa.ParseUncompressedPublicKey(curve, pt)
}

func (j *jwk) okp() (crypto.PublicKey, error) {
	if j.Crv != "Ed25519" {
		return nil, fmt.Errorf("unsupported okp curve %q", j.Crv)
	}
	x, err := b64url(j.X)
	if err != nil || len(x) != ed25519.PublicKeySize {
		return nil, errors.New("bad ed25519 key")
	}
	return ed25519.PublicKey(x), nil
}
