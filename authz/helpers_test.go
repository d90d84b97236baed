package authz

import (
	"net/netip"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz/token"
)

// carrier is a Carrier over plain maps, as the proxy's fasthttp one is over the parsed request. Values are
// turned into bytes once, so that a lookup allocates nothing, as with fasthttp.
type carrier struct {
	query, cookie, header map[string]string
	qb, cb, hb            map[string][]byte
}

func (c *carrier) QueryArg(name string) []byte { c.init(); return c.qb[name] }
func (c *carrier) Cookie(name string) []byte   { c.init(); return c.cb[name] }
func (c *carrier) Header(name string) []byte   { c.init(); return c.hb[name] }

func (c *carrier) init() {
	if c.qb != nil {
		return
	}
	conv := func(m map[string]string) map[string][]byte {
		out := map[string][]byte{}
		for k, v := range m {
			out[k] = []byte(v)
		}
		return out
	}
	c.qb, c.cb, c.hb = conv(c.query), conv(c.cookie), conv(c.header)
}

func q(tok string) *carrier { return &carrier{query: map[string]string{"token": tok}} }

var (
	testNow    = time.Unix(1_700_000_000, 0)
	clientIP   = netip.MustParseAddr("203.0.113.7")
	otherIP    = netip.MustParseAddr("198.51.100.9")
	hmacSecret = []byte("0123456789abcdef0123456789abcdef-test")
	edgeSecret = "edge-secret-for-tests-0123456789abcdef"
	stSecret   = "SECRETKEY"
)

// stSalt makes minted securetokens reproducible, so that a test can mint the same one twice.
const stSalt = "00112233445566778899aabbccddeeff"

// mintST mints a securetoken for ch from clientIP, valid from 300 s before testNow to an hour after.
func mintST(key, ch string) string {
	return token.MintSecureToken(key, ch, clientIP.String(), testNow.Unix()-300, testNow.Unix()+3600, stSalt)
}

// jwtConfig is an auth.jwt section with an HMAC key.
func jwtConfig(secret string) *JWTConfig {
	return &JWTConfig{JWTConfig: token.JWTConfig{Algorithms: []string{"HS256"}, Secret: secret}}
}

func newAuthz(t testing.TB, cfg Config) *Authorizer {
	t.Helper()
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

func req(channel string, ip netip.Addr) *Request {
	return &Request{Path: []byte("/play/" + channel + "/index.m3u8"), Channel: []byte(channel), ClientIP: ip}
}
