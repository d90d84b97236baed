package token

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	oldKey = []byte("old-hmac-key-0123456789abcdef-0123456789")
	newKey = []byte("new-hmac-key-0123456789abcdef-0123456789")
)

// A token naming a key is checked against that key only; a token naming none is tried against each; a kid no
// key has falls back to the keys without an id. The verifier says which key verified.
func TestJWTSecretsPickTheKeyByKid(t *testing.T) {
	v := newAccess(t, JWTConfig{Algorithms: []string{"HS256"}, Secrets: []SecretConfig{
		{KeyID: "old", Secret: string(oldKey)},
		{KeyID: "new", Secret: string(newKey)},
	}}, AccessConfig{})
	f := func(name string, kid string, key []byte, wantErr error, wantKey []byte) {
		t.Helper()
		hdr := map[string]any{"alg": "HS256"}
		if kid != "" {
			hdr["kid"] = kid
		}
		tok := rawJWT(t, hdr, baseClaims(), jwt.SigningMethodHS256, key)
		var out Verified
		err := v.Verify([]byte(tok), []byte("a001"), clientIP, testNow, &out)
		if !errors.Is(err, wantErr) {
			t.Fatalf("%s: %v, want %v", name, err, wantErr)
		}
		if err == nil && out.Key != RefOf(wantKey) {
			t.Fatalf("%s: verified by key %x, want %x", name, out.Key, RefOf(wantKey))
		}
	}
	f("kid old", "old", oldKey, nil, oldKey)
	f("kid new", "new", newKey, nil, newKey)
	f("no kid, old key", "", oldKey, nil, oldKey)
	f("no kid, new key", "", newKey, nil, newKey)
	f("kid names the other key", "new", oldKey, ErrSignature, nil)
	f("unknown kid", "gone", oldKey, ErrUnknownKey, nil)
	f("no kid, unknown key", "", []byte("some-other-key-0123456789abcdef-01234"), ErrSignature, nil)
	if !v.HasKey(RefOf(oldKey)) || !v.HasKey(RefOf(newKey)) || v.HasKey(RefOf([]byte("x"))) {
		t.Fatal("HasKey does not match the configured keys")
	}
}

// The shorthand key has no id: issuers that send a kid of their own keep working with it.
func TestJWTShorthandKeyTakesAnyKid(t *testing.T) {
	v := newAccess(t, JWTConfig{Algorithms: []string{"HS256"}, Secret: string(oldKey)}, AccessConfig{})
	tok := rawJWT(t, map[string]any{"alg": "HS256", "kid": "issuer-own"}, baseClaims(), jwt.SigningMethodHS256, oldKey)
	var out Verified
	if err := v.Verify([]byte(tok), []byte("a001"), clientIP, testNow, &out); err != nil || out.Key != RefOf(oldKey) {
		t.Fatalf("kid with the shorthand key: %v, key %x", err, out.Key)
	}
}

func TestSecureTokenSecretsAcceptAnyKey(t *testing.T) {
	cfg := SecureTokenConfig{Secrets: []SecretConfig{{Secret: "OLDKEY"}, {Secret: "NEWKEY"}}}
	if err := cfg.Validate("auth.securetoken"); err != nil {
		t.Fatal(err)
	}
	v, err := NewSecureTokenVerifier(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := testNow.Unix() - 60
	for _, k := range []string{"OLDKEY", "NEWKEY"} {
		tok := MintSecureToken(k, "bbc", clientIP.String(), start, start+3600, "abc")
		var out Verified
		if err := v.Verify([]byte(tok), []byte("bbc"), clientIP, testNow, &out); err != nil || out.Key != RefOf([]byte(k)) {
			t.Fatalf("%s: %v, key %x", k, err, out.Key)
		}
	}
	tok := MintSecureToken("OTHER", "bbc", clientIP.String(), start, start+3600, "abc")
	var out Verified
	if err := v.Verify([]byte(tok), []byte("bbc"), clientIP, testNow, &out); !errors.Is(err, ErrSignature) {
		t.Fatalf("a key not in the list: %v", err)
	}
}

// The edge mints with its first key, naming it when it has an id, and verifies with any: a token naming a key
// is checked with that key only, one naming none (minted before keys had ids) with each.
func TestEdgeSignerRotation(t *testing.T) {
	exp := testNow.Add(time.Hour).Unix()
	et := EdgeToken{Channel: "a001", Expires: exp, IP: clientIP, SessionID: 9, UserID: "u"}
	signer := func(keys ...Key) *EdgeSigner {
		t.Helper()
		s, err := NewEdgeSignerKeys(keys)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	kOld := Key{ID: "old", Secret: oldKey, Ref: RefOf(oldKey)}
	kNew := Key{ID: "new", Secret: newKey, Ref: RefOf(newKey)}
	anon := Key{Secret: oldKey, Ref: RefOf(oldKey)}
	mint := func(s *EdgeSigner) []byte {
		t.Helper()
		tok, err := s.AppendToken(nil, &et)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	f := func(name string, s *EdgeSigner, tok []byte, wantErr error, wantKey KeyRef) {
		t.Helper()
		var c EdgeClaims
		err := s.Verify(tok, []byte("a001"), clientIP, testNow.Unix(), &c)
		if !errors.Is(err, wantErr) {
			t.Fatalf("%s: %v, want %v", name, err, wantErr)
		}
		if err == nil && (c.Verified().Key != wantKey || c.SessionID != 9 || string(c.UserID()) != "u") {
			t.Fatalf("%s: claims %+v", name, c.Verified())
		}
	}
	v1 := mint(signer(anon))
	oldTok := mint(signer(kOld, kNew))
	newTok := mint(signer(kNew, kOld))
	if len(oldTok) <= len(v1) {
		t.Fatalf("a token minted with a key id does not carry it: %d vs %d bytes", len(oldTok), len(v1))
	}
	both := signer(kNew, kOld)
	f("old key's token, both keys", both, oldTok, nil, kOld.Ref)
	f("new key's token, both keys", both, newTok, nil, kNew.Ref)
	f("token without kid, both keys", both, v1, nil, kOld.Ref)
	f("old key removed", signer(kNew), oldTok, ErrSignature, 0)
	f("new key not yet added", signer(kOld), newTok, ErrSignature, 0)
	// The id is covered by the MAC: a token that names another key than the one that signed it is refused.
	raw, err := base64.RawURLEncoding.DecodeString(string(oldTok[len(edgePrefix):]))
	if err != nil || string(raw[2:5]) != "old" {
		t.Fatalf("token layout: %v %q", err, raw[:5])
	}
	copy(raw[2:5], "new")
	f("kid renamed", both, []byte(edgePrefix+base64.RawURLEncoding.EncodeToString(raw)), ErrSignature, 0)
	f("same id, other secret", signer(Key{ID: "old", Secret: newKey, Ref: RefOf(newKey)}), oldTok, ErrSignature, 0)
	if both.MintKey() != kNew.Ref || !both.HasKey(kOld.Ref) || both.HasKey(RefOf([]byte("x"))) {
		t.Fatal("MintKey/HasKey do not match the keys")
	}
}

func TestEdgeVerifyWithKeysAllocatesNothing(t *testing.T) {
	s, err := NewEdgeSignerKeys([]Key{{ID: "new", Secret: newKey}, {ID: "old", Secret: oldKey}})
	if err != nil {
		t.Fatal(err)
	}
	old, _ := NewEdgeSignerKeys([]Key{{ID: "old", Secret: oldKey}})
	tok, _ := old.AppendToken(nil, &EdgeToken{Channel: "a001", Expires: testNow.Add(time.Hour).Unix(), IP: clientIP, SessionID: 42})
	var c EdgeClaims
	if n := testing.AllocsPerRun(100, func() {
		if err := s.Verify(tok, []byte("a001"), clientIP, testNow.Unix(), &c); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Verify with a second key allocates %v times", n)
	}
}

func TestLoadKeys(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "key")
	if err := os.WriteFile(file, append(oldKey, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HLSEDGE_TEST_KEY", " "+string(newKey)+" ")
	t.Setenv("HLSEDGE_TEST_EMPTY", "")
	ok := func(name string, one SecretConfig, list []SecretConfig, want ...[]byte) {
		t.Helper()
		keys, err := LoadKeys("auth.jwt", one, list, MinSecretBytes)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(keys) != len(want) {
			t.Fatalf("%s: %d keys, want %d", name, len(keys), len(want))
		}
		for i := range want {
			if string(keys[i].Secret) != string(want[i]) || keys[i].Ref != RefOf(want[i]) {
				t.Fatalf("%s: key %d differs", name, i)
			}
		}
	}
	ok("none", SecretConfig{}, nil)
	ok("inline", SecretConfig{Secret: string(oldKey)}, nil, oldKey)
	ok("file, trimmed", SecretConfig{SecretFile: file}, nil, oldKey)
	ok("env, trimmed", SecretConfig{SecretEnv: "HLSEDGE_TEST_KEY"}, nil, newKey)
	ok("list", SecretConfig{}, []SecretConfig{{KeyID: "a", SecretEnv: "HLSEDGE_TEST_KEY"}, {KeyID: "b", SecretFile: file}}, newKey, oldKey)

	const secret = "a-secret-pasted-into-the-wrong-field-0123"
	fail := func(name string, one SecretConfig, list []SecretConfig, want string) {
		t.Helper()
		_, err := LoadKeys("auth.jwt", one, list, MinSecretBytes)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %v, want %q", name, err, want)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), dir) {
			t.Fatalf("%s: the error shows a source's value: %v", name, err)
		}
	}
	fail("two sources", SecretConfig{Secret: string(oldKey), SecretEnv: "HLSEDGE_TEST_KEY"}, nil,
		"'auth.jwt.secret', 'auth.jwt.secret_file' and 'auth.jwt.secret_env' are sources of one key: set only one")
	fail("two sources in the list", SecretConfig{}, []SecretConfig{{SecretFile: file, SecretEnv: "HLSEDGE_TEST_KEY"}},
		"'auth.jwt.secrets[0].secret', 'auth.jwt.secrets[0].secret_file' and 'auth.jwt.secrets[0].secret_env'")
	fail("shorthand and list", SecretConfig{SecretEnv: "HLSEDGE_TEST_KEY"}, []SecretConfig{{Secret: string(oldKey)}},
		"'auth.jwt.secret_env' and 'auth.jwt.secrets' must not both be set")
	fail("env unset", SecretConfig{SecretEnv: "HLSEDGE_TEST_UNSET"}, nil, "'auth.jwt.secret_env' names an environment variable that is not set")
	fail("env empty", SecretConfig{SecretEnv: "HLSEDGE_TEST_EMPTY"}, nil, "'auth.jwt.secret_env' names an empty environment variable")
	fail("secret as env name", SecretConfig{SecretEnv: secret}, nil, "'auth.jwt.secret_env' must be the name of an environment variable")
	fail("secret as file name", SecretConfig{SecretFile: filepath.Join(dir, secret)}, nil, "'auth.jwt.secret_file' must be readable: no such file")
	fail("short", SecretConfig{}, []SecretConfig{{Secret: "short"}}, "'auth.jwt.secrets[0].secret' must be at least 32 bytes")
	fail("empty entry", SecretConfig{}, []SecretConfig{{KeyID: "a"}}, "'auth.jwt.secrets[0]' must set one of secret, secret_file or secret_env")
	fail("bad kid", SecretConfig{}, []SecretConfig{{KeyID: "a b", Secret: string(oldKey)}}, "'auth.jwt.secrets[0].kid' must be 1 to 32")
	fail("kid twice", SecretConfig{}, []SecretConfig{{KeyID: "a", Secret: string(oldKey)}, {KeyID: "a", Secret: string(newKey)}},
		"'auth.jwt.secrets[1].kid' \"a\" is listed twice")

	if b, err := LoadSecret("admin.token", "", "", "HLSEDGE_TEST_KEY"); err != nil || string(b) != string(newKey) {
		t.Fatalf("LoadSecret from env: %q %v", b, err)
	}
	if _, err := LoadSecret("admin.token", "x", "", "HLSEDGE_TEST_KEY"); err == nil ||
		!strings.Contains(err.Error(), "'admin.token', 'admin.token_file' and 'admin.token_env' are sources of one key") {
		t.Fatalf("LoadSecret with two sources: %v", err)
	}
}
