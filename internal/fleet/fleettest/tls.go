package fleettest

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"testing"

	"github.com/hlsedge/hlsedge/proxy/certs/certtest"
)

// TLSFiles are PEM files of a throw-away CA and a certificate it signed for 127.0.0.1 and localhost, good for
// the server and for a client.
type TLSFiles struct {
	CA, Cert, Key string
	pool          *x509.CertPool
}

// NewTLSFiles writes a CA and a server certificate into a temporary directory of the test.
func NewTLSFiles(t testing.TB) *TLSFiles {
	t.Helper()
	dir := t.TempDir()
	ca := certtest.NewCA(t, "fleettest CA")
	f := &TLSFiles{CA: filepath.Join(dir, "ca.pem"), pool: ca.Pool()}
	certtest.WriteFile(t, f.CA, ca.PEM)
	f.Cert, f.Key = ca.IssueClientServer(t, "localhost", "127.0.0.1").Write(t, dir, "node")
	return f
}

// ClientConfig trusts the CA, for a test's own connections.
func (f *TLSFiles) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: f.pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}
