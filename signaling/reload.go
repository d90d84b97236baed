package signaling

import (
	"net/http"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// settings is the part of a Server a config reload replaces. It is immutable once stored.
type settings struct {
	cfg     Config
	ver     *verifier
	origins []originPattern
	anyOrig bool
	// upgrader serves sockets on fasthttp's hijack goroutine, wsUpgrader detached ones (see DetachSockets).
	upgrader   websocket.FastHTTPUpgrader
	wsUpgrader websocket.Upgrader
}

// settings returns the settings in force.
func (s *Server) settings() *settings { return s.cur.Load() }

// conf returns the config in force; callers that read several fields keep the pointer, so that a reload in
// between cannot mix two configs.
func (s *Server) conf() *Config { return &s.cur.Load().cfg }

// newSettings builds the settings of a defaulted, validated cfg: the verifier reads its keys (and starts a
// JWKS refresh, which the settings' verifier closes).
func (s *Server) newSettings(cfg Config) (*settings, error) {
	ver, err := newVerifier(&cfg.JWT, s.log)
	if err != nil {
		return nil, err
	}
	st := &settings{cfg: cfg, ver: ver}
	for _, o := range cfg.AllowedOrigins {
		if o == "*" {
			st.anyOrig = true
			continue
		}
		p, _ := parseOriginPattern(o) // Validate parsed it already
		st.origins = append(st.origins, p)
	}
	// A pool instead of a 4 KiB buffer per socket: most sockets are idle, and fan-out frames are small.
	st.wsUpgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.HandshakeTimeout,
		ReadBufferSize:   cfg.ReadBufferSize,
		WriteBufferPool:  &s.writeBufs,
		// admit checked the Origin against the allow-list before the hijack.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	st.upgrader = websocket.FastHTTPUpgrader{
		HandshakeTimeout: cfg.HandshakeTimeout,
		ReadBufferSize:   cfg.ReadBufferSize,
		WriteBufferPool:  &s.writeBufs,
		CheckOrigin:      s.originAllowed,
		Error: func(ctx *fasthttp.RequestCtx, status int, reason error) {
			refuse(ctx, status, reason.Error())
		},
	}
	return st, nil
}

// Reload puts cfg in force without closing a socket: new upgrades are checked against its keys, origins and
// limits, and open sockets follow it from their next message, ping or token refresh on. The verifier is built
// first (key files read, a JWKS loaded), so a config that fails leaves the running one in place and Reload
// returns the error, naming the field. The hub keeps what it was built with (see HubFields).
func (s *Server) Reload(cfg Config) error {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	st, err := s.newSettings(cfg)
	if err != nil {
		return err
	}
	old := s.cur.Swap(st)
	// Stops the old key set's JWKS refresh; a verification still running on it finishes with the keys it has.
	old.ver.close()
	return nil
}

// HubFields names the fields of next that differ from cur and that a reload cannot apply to a hub already
// running (its reconnect grace, chat history and default waiting room): they take effect on restart.
func HubFields(cur, next Config) []string {
	cur.SetDefaults()
	next.SetDefaults()
	var out []string
	if cur.ReconnectGrace != next.ReconnectGrace {
		out = append(out, "signaling.reconnect_grace")
	}
	if cur.ChatHistory != next.ChatHistory {
		out = append(out, "signaling.chat_history")
	}
	if *cur.DefaultWaitingRoom != *next.DefaultWaitingRoom {
		out = append(out, "signaling.default_waiting_room")
	}
	return out
}
