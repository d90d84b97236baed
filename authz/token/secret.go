package token

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// SecretConfig is one key of a rotation list (`secrets:`): an optional key id and the secret from exactly one
// source. The same three sources are the shorthand fields of a section that takes one key (`secret`,
// `secret_file`, `secret_env`).
type SecretConfig struct {
	// KeyID names the key: a JWT whose `kid` header names it is checked against this key only, and an edge token
	// carries the id of the key that signed it. Without one the key is tried for tokens that name none.
	// 1 to 32 letters, digits, '.', '_', '-'.
	KeyID string `yaml:"kid"`
	// Secret is the key itself, written in the config. Prefer SecretFile or SecretEnv in production.
	Secret string `yaml:"secret"`
	// SecretFile reads the key from a file (surrounding whitespace trimmed).
	SecretFile string `yaml:"secret_file"`
	// SecretEnv reads the key from the named environment variable (surrounding whitespace trimmed).
	SecretEnv string `yaml:"secret_env"`
}

// set reports whether any source is given.
func (s *SecretConfig) set() bool { return s.Secret != "" || s.SecretFile != "" || s.SecretEnv != "" }

// KeyRef names a key without revealing it (the first 8 bytes of a domain-separated SHA-256 of the key), so that
// a decision cached under a key can tell, after a reload, whether that key is still configured. It is never 0;
// 0 means "no key" (a decision a middleware made).
type KeyRef uint64

// RefOf computes a key's reference.
func RefOf(key []byte) KeyRef {
	h := sha256.New()
	h.Write([]byte("hlsedge key ref\x00"))
	h.Write(key)
	var sum [sha256.Size]byte
	return KeyRef(binary.BigEndian.Uint64(h.Sum(sum[:0])[:8]) | 1)
}

// Key is a loaded secret key.
type Key struct {
	// ID is the key id, empty when the key has none.
	ID string
	// Secret is the key material; it is never logged or put in an error.
	Secret []byte
	// Ref names the key in caches.
	Ref KeyRef
}

// maxKeyIDBytes bounds a key id: an edge token carries it in every child URL.
const maxKeyIDBytes = 32

// LoadKeys loads the keys of a section that takes either one secret (the shorthand fields of one, whose KeyID
// is ignored) or a list of them. f is the section's YAML path; errors name the field (`auth.jwt.secret_file`,
// `auth.jwt.secrets[1].kid`) and never hold a secret, a file's path or a variable's name, since a secret pasted
// into the wrong field would otherwise end up in the log. Each key must have at least minLen bytes; key ids
// must be unique. It returns no key, and no error, when neither is set.
func LoadKeys(f string, one SecretConfig, list []SecretConfig, minLen int) ([]Key, error) {
	if one.set() {
		if len(list) > 0 {
			return nil, fmt.Errorf("'%s.%s' and '%s.secrets' must not both be set: list every key under 'secrets'",
				f, one.field(), f)
		}
		b, err := one.load(fieldNames(f + "."))
		if err != nil {
			return nil, err
		}
		if len(b) < minLen {
			return nil, fmt.Errorf("'%s.%s' must be at least %d bytes", f, one.field(), minLen)
		}
		return []Key{{Secret: b, Ref: RefOf(b)}}, nil
	}
	keys := make([]Key, 0, len(list))
	seen := map[string]bool{}
	for i := range list {
		s := &list[i]
		p := fmt.Sprintf("%s.secrets[%d].", f, i)
		if s.KeyID != "" {
			if !validKeyID(s.KeyID) {
				return nil, fmt.Errorf("'%skid' must be 1 to %d letters, digits, '.', '_' or '-'", p, maxKeyIDBytes)
			}
			if seen[s.KeyID] {
				return nil, fmt.Errorf("'%skid' %q is listed twice", p, s.KeyID)
			}
			seen[s.KeyID] = true
		}
		if !s.set() {
			return nil, fmt.Errorf("'%s' must set one of secret, secret_file or secret_env", strings.TrimSuffix(p, "."))
		}
		b, err := s.load(fieldNames(p))
		if err != nil {
			return nil, err
		}
		if len(b) < minLen {
			return nil, fmt.Errorf("'%s%s' must be at least %d bytes", p, s.field(), minLen)
		}
		keys = append(keys, Key{ID: s.KeyID, Secret: b, Ref: RefOf(b)})
	}
	return keys, nil
}

// field is the one source field that is set, for messages.
func (s *SecretConfig) field() string {
	switch {
	case s.SecretFile != "":
		return "secret_file"
	case s.SecretEnv != "":
		return "secret_env"
	}
	return "secret"
}

// fieldNames are the YAML paths of the three source fields under prefix p ("auth.jwt.").
func fieldNames(p string) [3]string {
	return [3]string{p + "secret", p + "secret_file", p + "secret_env"}
}

// load reads the secret from its one source; names are the YAML paths of the secret, file and env fields.
func (s *SecretConfig) load(names [3]string) ([]byte, error) {
	n := 0
	for _, v := range []string{s.Secret, s.SecretFile, s.SecretEnv} {
		if v != "" {
			n++
		}
	}
	if n > 1 {
		return nil, fmt.Errorf("'%s', '%s' and '%s' are sources of one key: set only one", names[0], names[1], names[2])
	}
	switch {
	case s.SecretFile != "":
		b, err := os.ReadFile(s.SecretFile)
		if err != nil {
			// The path is left out: the operator knows it, and a secret pasted here by mistake must not be logged.
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("'%s' must be readable: %w", names[1], err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return nil, fmt.Errorf("'%s' must not be empty", names[1])
		}
		return []byte(v), nil
	case s.SecretEnv != "":
		if !validEnvName(s.SecretEnv) {
			return nil, fmt.Errorf("'%s' must be the name of an environment variable", names[2])
		}
		v, ok := os.LookupEnv(s.SecretEnv)
		if !ok {
			return nil, fmt.Errorf("'%s' names an environment variable that is not set", names[2])
		}
		if v = strings.TrimSpace(v); v == "" {
			return nil, fmt.Errorf("'%s' names an empty environment variable", names[2])
		}
		return []byte(v), nil
	}
	return []byte(s.Secret), nil
}

// LoadSecret reads one secret given by its three source fields, for sections that take exactly one key (the
// admin token). f is the YAML path of the secret field itself (`admin.token`); the other two are f_file and
// f_env. It returns nil, and no error, when none is set.
func LoadSecret(f, value, file, env string) ([]byte, error) {
	s := SecretConfig{Secret: value, SecretFile: file, SecretEnv: env}
	if !s.set() {
		return nil, nil
	}
	return s.load([3]string{f, f + "_file", f + "_env"})
}

func validKeyID(s string) bool {
	if s == "" || len(s) > maxKeyIDBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validEnvName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
