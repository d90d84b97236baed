package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"
)

// Config is the `tls:` section of the edge configuration. Its presence turns TLS on for the public listener.
type Config struct {
	// CertFile is the PEM certificate chain, leaf first (certbot's fullchain.pem). It is the default certificate:
	// the one served to clients that send no SNI or a name no certificate covers.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile (PKCS#1, PKCS#8 or SEC 1). Its contents are never logged.
	KeyFile string `yaml:"key_file"`
	// Certificates are more pairs, chosen by SNI from the DNS names of each leaf (exact names first, then
	// wildcards such as *.example.com). Without CertFile, the first of them is the default.
	Certificates []Pair `yaml:"certificates"`
	// CheckInterval is how often, at most, a handshake looks at the files' modification time and size, so a
	// renewed certificate is served without a restart. Nothing is read between handshakes. Default 1s.
	CheckInterval time.Duration `yaml:"check_interval"`
	// MinVersion is the oldest protocol accepted: "1.2" (the default) or "1.3".
	MinVersion string `yaml:"min_version"`
}

// Pair is one certificate chain and its key.
type Pair struct {
	// CertFile is the PEM certificate chain, leaf first.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile.
	KeyFile string `yaml:"key_file"`
}

// SetDefaults fills every unset field.
func (c *Config) SetDefaults() {
	if c.CheckInterval == 0 {
		c.CheckInterval = time.Second
	}
	if c.MinVersion == "" {
		c.MinVersion = "1.2"
	}
}

// Validate checks every field and loads every pair once, so that a missing file, a key that does not match its
// certificate or a truncated chain is reported at start (and by a config check) with the field that names it.
func (c *Config) Validate() error {
	if c.CheckInterval < 0 {
		return errors.New("'tls.check_interval' must not be negative")
	}
	if _, err := c.minVersion(); err != nil {
		return err
	}
	pairs := c.pairs()
	if len(pairs) == 0 {
		return errors.New("'tls.cert_file' and 'tls.key_file' (or 'tls.certificates') must be set when 'tls' is present")
	}
	for _, p := range pairs {
		if p.CertFile == "" {
			return fmt.Errorf("'%s.cert_file' must be set", p.field)
		}
		if p.KeyFile == "" {
			return fmt.Errorf("'%s.key_file' must be set", p.field)
		}
		if _, err := p.load(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) minVersion() (uint16, error) {
	switch c.MinVersion {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("'tls.min_version' must be \"1.2\" or \"1.3\", got %q", c.MinVersion)
}

// namedPair is a Pair with the YAML path that errors name.
type namedPair struct {
	Pair
	field string
}

// pairs lists the configured pairs, the default first.
func (c *Config) pairs() []namedPair {
	var ps []namedPair
	if c.CertFile != "" || c.KeyFile != "" {
		ps = append(ps, namedPair{Pair{c.CertFile, c.KeyFile}, "tls"})
	}
	for i, p := range c.Certificates {
		ps = append(ps, namedPair{p, fmt.Sprintf("tls.certificates[%d]", i)})
	}
	return ps
}
