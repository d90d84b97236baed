package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hlsedge/hlsedge/authz/token"
)

// runToken mints a test token, or a playable link with --url, the way an operator's website would.
func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kind := fs.String("kind", "jwt", "token kind: jwt, securetoken or edge")
	secret := fs.String("secret", "", "HMAC secret (jwt HS*, securetoken key, edge secret)")
	secretFile := fs.String("secret-file", "", "read the secret from this file instead")
	keyFile := fs.String("key", "", "private key PEM for jwt RS*/PS*/ES*/EdDSA")
	alg := fs.String("alg", "", "jwt algorithm (default: HS256 with --secret, else from the key type)")
	kid := fs.String("kid", "", "jwt kid header")
	stream := fs.String("stream", "", "channel or stream name the token opens (jwt: comma-separated names or globs)")
	ttl := fs.Duration("ttl", 3*time.Hour, "token lifetime")
	ipFlag := fs.String("ip", "", "bind the token to this client IP (securetoken without it needs no_check_ip)")
	sub := fs.String("sub", "", "user id (jwt sub, edge user)")
	iss := fs.String("iss", "", "jwt issuer")
	aud := fs.String("aud", "", "jwt audience")
	maxSessions := fs.Int("max-sessions", 0, "jwt max_sessions claim")
	salt := fs.String("salt", "", "securetoken salt (default: 16 random bytes in hex, as the PHP example)")
	desync := fs.Duration("desync", 300*time.Second, "securetoken: start the window this much early, as the PHP example")
	base := fs.String("url", "", "print a playable URL: BASE/play/STREAM/index.m3u8, or BASE with {stream} replaced")
	param := fs.String("param", "token", "query parameter the URL carries the token in")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *stream == "" {
		return errors.New("--stream is required")
	}
	if *ttl <= 0 {
		return errors.New("--ttl must be greater than zero")
	}
	var ip netip.Addr
	if *ipFlag != "" {
		a, err := netip.ParseAddr(*ipFlag)
		if err != nil {
			return fmt.Errorf("--ip: %w", err)
		}
		ip = a.Unmap()
	}
	key := []byte(*secret)
	if *secretFile != "" {
		if *secret != "" {
			return errors.New("--secret and --secret-file are exclusive")
		}
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return fmt.Errorf("--secret-file: %w", err)
		}
		key = []byte(strings.TrimSpace(string(b)))
	}
	now := time.Now()

	var (
		tok string
		err error
	)
	switch *kind {
	case "jwt":
		tok, err = mintJWT(key, *keyFile, *alg, *kid, *stream, *sub, *iss, *aud, *maxSessions, ip, now, *ttl)
	case "securetoken":
		if len(key) == 0 {
			return errors.New("--secret is required for securetoken")
		}
		if strings.Contains(*stream, ",") {
			return errors.New("securetoken opens exactly one stream")
		}
		s := *salt
		if s == "" {
			s = token.NewSalt()
		}
		ipStr := ""
		if ip.IsValid() {
			ipStr = ip.String()
		} else {
			fmt.Fprintln(stderr, "note: no --ip: the token verifies only where no_check_ip is set")
		}
		start := now.Add(-*desync).Unix()
		tok = token.MintSecureToken(string(key), *stream, ipStr, start, start+int64(*ttl/time.Second), s)
	case "edge":
		tok, err = token.MintEdgeToken(key, token.EdgeToken{Channel: *stream, Expires: now.Add(*ttl).Unix(), IP: ip, UserID: *sub})
	default:
		return fmt.Errorf("--kind must be jwt, securetoken or edge, got %q", *kind)
	}
	if err != nil {
		return err
	}
	if *base == "" {
		_, err = fmt.Fprintln(stdout, tok)
		return err
	}
	link, err := playURL(*base, *stream, *param, tok)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, link)
	return err
}

func mintJWT(secret []byte, keyFile, alg, kid, streams, sub, iss, aud string, maxSessions int, ip netip.Addr, now time.Time, ttl time.Duration) (string, error) {
	m := token.JWTMint{
		Alg: alg, KeyID: kid, Streams: strings.Split(streams, ","), Subject: sub, IP: ip,
		Issuer: iss, Audience: aud, MaxSessions: maxSessions, Now: now, TTL: ttl,
	}
	switch {
	case keyFile != "" && len(secret) > 0:
		return "", errors.New("--secret and --key are exclusive for jwt")
	case keyFile != "":
		pem, err := os.ReadFile(keyFile)
		if err != nil {
			return "", fmt.Errorf("--key: %w", err)
		}
		k, err := token.ParsePrivateKeyPEM(pem)
		if err != nil {
			return "", fmt.Errorf("--key: %w", err)
		}
		m.Key = k
		if m.Alg == "" {
			m.Alg = algForKey(k)
		}
	case len(secret) > 0:
		m.Key = secret
		if m.Alg == "" {
			m.Alg = "HS256"
		}
	default:
		return "", errors.New("jwt needs --secret (HS*) or --key (RS*/PS*/ES*/EdDSA)")
	}
	return token.MintJWT(m)
}

func algForKey(k crypto.Signer) string {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return "RS256"
	case *ecdsa.PrivateKey:
		switch k.Curve.Params().BitSize {
		case 384:
			return "ES384"
		case 521:
			return "ES512"
		}
		return "ES256"
	case ed25519.PrivateKey:
		return "EdDSA"
	}
	return ""
}

// playURL builds the viewer's link. The stream is not escaped: channel names are plain path segments, and a glob
// makes no link.
func playURL(base, stream, param, tok string) (string, error) {
	if strings.ContainsAny(stream, ",*?") {
		return "", errors.New("--url needs a single stream name, not a list or glob")
	}
	var link string
	if strings.Contains(base, "{stream}") {
		link = strings.ReplaceAll(base, "{stream}", stream)
	} else {
		link = strings.TrimRight(base, "/") + "/play/" + stream + "/index.m3u8"
	}
	u, err := url.Parse(link)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--url must be an http(s) URL, got %q", base)
	}
	sep := "?"
	if strings.Contains(link, "?") {
		sep = "&"
	}
	return link + sep + url.QueryEscape(param) + "=" + url.QueryEscape(tok), nil
}
