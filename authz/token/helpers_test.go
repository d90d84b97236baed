package token

import (
	"crypto"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var (
	testNow     = time.Unix(1_700_000_000, 0)
	clientIP    = netip.MustParseAddr("203.0.113.7")
	otherIP     = netip.MustParseAddr("198.51.100.9")
	hmacSecret  = []byte("0123456789abcdef0123456789abcdef-test")
	edgeSecret  = "edge-secret-for-tests-0123456789abcdef"
	stSecret    = "SECRETKEY"
	testdataDir = "testdata/keys"
)

func keyPath(name string) string { return filepath.Join(testdataDir, name) }

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(keyPath(name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func privKey(t testing.TB, name string) crypto.Signer {
	t.Helper()
	k, err := ParsePrivateKeyPEM(readFile(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newAccess builds auth.jwt's verifier as the authorizer does: defaults, validation, keys.
func newAccess(t testing.TB, keys JWTConfig, access AccessConfig) *AccessVerifier {
	t.Helper()
	v, err := buildAccess(keys, access)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func buildAccess(keys JWTConfig, access AccessConfig) (*AccessVerifier, error) {
	keys.SetDefaults()
	access.SetDefaults()
	if err := keys.Validate("auth.jwt"); err != nil {
		return nil, err
	}
	return NewAccessVerifier(&keys, &access, nil)
}

// verdict is what the authorizer makes of a verification: the status and the one-line reason.
func verdict(err error) (int, string) {
	if err != nil {
		return Status(err), err.Error()
	}
	return Status(nil), "ok"
}
