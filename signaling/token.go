package signaling

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// algFamily binds each JWS algorithm to the one key type it may use (RFC 8725 §3.1).
type algFamily uint8

const (
	famNone algFamily = iota
	famHMAC
	famRSA
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

// Identity is who a verified token says the client is. It comes from the token only: the seed trusted a
// client-sent email, which let anyone take anyone's place in the queue.
type Identity struct {
	Name      string `json:"name"`
	Email     string `json:"email"`
	ID        string `json:"id,omitempty"`
	Avatar    string `json:"avatar,omitempty"`
	Moderator bool   `json:"moderator"`
}

// key is what limits and the waiting list know a user by: the user id when the token has one, else the email.
func (id *Identity) key() string {
	if id.ID != "" {
		return "id:" + id.ID
	}
	return "email:" + strings.ToLower(id.Email)
}

// Grant is a verified token's content.
type Grant struct {
	Identity
	Room      string
	ContentID string
	Expires   time.Time
}

// flexString accepts a JSON string or number (the backend's ids are either), and null as empty.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	switch {
	case bytes.Equal(b, []byte("null")):
		*f = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
	default:
		if _, err := strconv.ParseFloat(string(b), 64); err != nil {
			return ErrClaim
		}
		*f = flexString(b)
	}
	return nil
}

// tokenClaims is the seed's claim set: get_encoded_socketio_jwt.
type tokenClaims struct {
	jwt.RegisteredClaims
	Context struct {
		User struct {
			Name   string     `json:"name"`
			Email  string     `json:"email"`
			ID     flexString `json:"id"`
			Avatar string     `json:"avatar"`
		} `json:"user"`
	} `json:"context"`
	Room      string     `json:"room"`
	ContentID flexString `json:"content_id"`
	Moderator bool       `json:"moderator"`
}

// maxTokenBytes refuses longer tokens before any parsing.
const maxTokenBytes = 8192

// verifier is built once per config: parser, allow-list and keys are fixed, so a request only parses.
type verifier struct {
	parser   *jwt.Parser
	allowed  map[string]algFamily
	secret   []byte
	keys     []pubKey
	issuer   string
	audience string
	leeway   time.Duration
	keyfunc  jwt.Keyfunc
}

type pubKey struct {
	fam algFamily
	key crypto.PublicKey
}

func newVerifier(c *JWTConfig) (*verifier, error) {
	v := &verifier{allowed: map[string]algFamily{}, issuer: c.Issuer, audience: c.Audience, leeway: *c.Leeway}
	for _, a := range c.Algorithms {
		v.allowed[a] = algFamilyOf(a)
	}
	if c.SecretFile != "" {
		b, err := os.ReadFile(c.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("'signaling.jwt.secret_file': %w", err)
		}
		v.secret = []byte(strings.TrimSpace(string(b)))
		if len(v.secret) < minSecretBytes {
			return nil, fmt.Errorf("'signaling.jwt.secret_file' must hold at least %d bytes", minSecretBytes)
		}
	} else if c.Secret != "" {
		v.secret = []byte(c.Secret)
	}
	for i, f := range c.PublicKeyFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("'signaling.jwt.public_key_files[%d]': %w", i, err)
		}
		ks, err := parsePublicKeys(b)
		if err != nil {
			return nil, fmt.Errorf("'signaling.jwt.public_key_files[%d]': %w", i, err)
		}
		v.keys = append(v.keys, ks...)
	}
	// WithoutClaimsValidation: time claims are checked against the caller's clock below, and the library's lazily
	// built validator is not safe to share between goroutines.
	v.parser = jwt.NewParser(jwt.WithValidMethods(c.Algorithms), jwt.WithoutClaimsValidation())
	v.keyfunc = v.keyFor
	return v, nil
}

// keyFor hands the parser a key of the family the algorithm demands and nothing else. Header members naming keys
// (jku, x5u, jwk, kid) are ignored: only configured keys verify.
func (v *verifier) keyFor(t *jwt.Token) (any, error) {
	fam, ok := v.allowed[t.Method.Alg()]
	if !ok {
		return nil, ErrAlgorithm
	}
	if _, ok := t.Header["crit"]; ok {
		return nil, ErrMalformed
	}
	if fam == famHMAC {
		if len(v.secret) == 0 {
			return nil, ErrNoKey
		}
		return v.secret, nil
	}
	var set jwt.VerificationKeySet
	for _, k := range v.keys {
		if k.fam == fam {
			set.Keys = append(set.Keys, k.key)
		}
	}
	switch len(set.Keys) {
	case 0:
		return nil, ErrNoKey
	case 1:
		return set.Keys[0], nil
	}
	return set, nil
}

// verify checks signature, time, issuer and audience, and returns the identity and conference the token names.
// Whether that conference is the one asked for is the caller's check.
func (v *verifier) verify(tok string, now time.Time) (*Grant, error) {
	if tok == "" {
		return nil, ErrNoToken
	}
	if len(tok) > maxTokenBytes {
		return nil, ErrMalformed
	}
	var c tokenClaims
	t, err := v.parser.ParseWithClaims(tok, &c, v.keyfunc)
	if err != nil {
		return nil, v.mapError(t, err)
	}
	if c.ExpiresAt == nil {
		return nil, ErrNoExpiry
	}
	if !now.Before(c.ExpiresAt.Add(v.leeway)) {
		return nil, ErrExpired
	}
	if c.NotBefore != nil && now.Add(v.leeway).Before(c.NotBefore.Time) {
		return nil, ErrNotYetValid
	}
	if v.issuer != "" && c.Issuer != v.issuer {
		return nil, ErrIssuer
	}
	found := false
	for _, a := range c.Audience {
		found = found || a == v.audience
	}
	if !found {
		return nil, ErrAudience
	}
	u := &c.Context.User
	if u.Email == "" && u.ID == "" {
		return nil, ErrNoIdentity
	}
	if c.Room == "" || len(c.Room) > maxRoomNameBytes || len(c.ContentID) > maxContentIDBytes {
		return nil, ErrClaim
	}
	return &Grant{
		Identity:  Identity{Name: u.Name, Email: u.Email, ID: string(u.ID), Avatar: u.Avatar, Moderator: c.Moderator},
		Room:      c.Room,
		ContentID: string(c.ContentID),
		Expires:   c.ExpiresAt.Time,
	}, nil
}

// mapError turns the library's errors into our sentinels; the library's messages are not part of any contract.
func (v *verifier) mapError(t *jwt.Token, err error) error {
	for _, s := range []error{ErrNoKey, ErrAlgorithm, ErrMalformed, ErrClaim} {
		if errors.Is(err, s) {
			return s
		}
	}
	switch {
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

// parsePublicKeys reads every PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE block of a PEM file.
func parsePublicKeys(data []byte) ([]pubKey, error) {
	var out []pubKey
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		var (
			k   any
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
		fam := famNone
		switch k := k.(type) {
		case *rsa.PublicKey:
			if k.N.BitLen() >= 2048 {
				fam = famRSA
			}
		case *ecdsa.PublicKey:
			switch k.Curve {
			case elliptic.P256():
				fam = famP256
			case elliptic.P384():
				fam = famP384
			case elliptic.P521():
				fam = famP521
			}
		case ed25519.PublicKey:
			fam = famEd25519
		}
		if fam == famNone {
			return nil, fmt.Errorf("unsupported or weak public key %T", k)
		}
		out = append(out, pubKey{fam: fam, key: k})
	}
	if len(out) == 0 {
		return nil, errors.New("no public key in pem")
	}
	return out, nil
}
