package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// load reads and checks one pair. Errors name the field and the file, never the bytes of the key.
func (p namedPair) load() (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(p.CertFile)
	if err != nil {
		return nil, fmt.Errorf("'%s.cert_file' must be readable: %w", p.field, err)
	}
	keyPEM, err := os.ReadFile(p.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("'%s.key_file' must be readable: %w", p.field, err)
	}
	return parsePair(p.field, certPEM, keyPEM)
}

// parsePair is tls.X509KeyPair made strict about what a half-written renewal looks like. X509KeyPair stops at
// the first block it cannot decode, so a chain cut in its second certificate would load as a leaf without its
// intermediate and break every client that lacks it; here any trailing bytes that are not a whole PEM block, and
// any certificate in the chain that does not parse, refuse the pair.
func parsePair(field string, certPEM, keyPEM []byte) (*tls.Certificate, error) {
	n, err := checkPEM(certPEM, func(b *pem.Block) error {
		if b.Type != "CERTIFICATE" {
			return fmt.Errorf("holds a %q block; only certificates belong in the chain", b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fmt.Errorf("parsing a certificate: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("'%s.cert_file' is not a whole PEM chain: %w", field, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("'%s.cert_file' holds no PEM certificate", field)
	}
	// The key's blocks are only checked for being whole: X509KeyPair parses the key, and its errors do not quote it.
	if n, err := checkPEM(keyPEM, nil); err != nil || n == 0 {
		return nil, fmt.Errorf("'%s.key_file' must hold one whole PEM private key", field)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("'%s.key_file' does not fit '%s.cert_file': %w", field, field, err)
	}
	if cert.Leaf == nil {
		// X509KeyPair fills Leaf since Go 1.23; kept so SNI matching never meets a nil leaf.
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("'%s.cert_file': parsing the leaf: %w", field, err)
		}
	}
	return &cert, nil
}

// checkPEM decodes every block, calling each (when not nil) on every one, and returns how many there were. Bytes
// after the last whole block that are not white space are an error: that is a file still being written.
func checkPEM(data []byte, each func(*pem.Block) error) (int, error) {
	n := 0
	for {
		b, rest := pem.Decode(data)
		if b == nil {
			if len(bytes.TrimSpace(data)) != 0 {
				return n, errors.New("ends in a partial PEM block (a file still being written?)")
			}
			return n, nil
		}
		if each != nil {
			if err := each(b); err != nil {
				return n, err
			}
		}
		n++
		data = rest
	}
}
