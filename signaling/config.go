package signaling

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hlsedge/hlsedge/authz/token"
)

// Config is the `signaling:` section of the edge configuration. Zero values take the defaults named on each
// field; Validate names the first field that is wrong, with its full YAML path.
type Config struct {
	// Path is where the WebSocket endpoint is mounted on the public listener. Default /ws.
	Path string `yaml:"path"`
	// SocketIOPath is where socket.io-client v3/v4 connects with its default options (Engine.IO 4: long polling
	// upgraded to a WebSocket, or a WebSocket from the start), with the same events, auth and limits as Path.
	// Default /socket.io/; "off" turns it off.
	SocketIOPath string `yaml:"socketio_path"`
	// MaxPollingSessions bounds the Engine.IO long-polling sessions open on this node; they also count in
	// MaxConns. An idle one holds its pending GET's connection, parked outside the HTTP server, and about 2.5 KB
	// (see the README). Default 10000; a negative value turns long polling off, and clients must then set
	// `transports: ["websocket"]`.
	MaxPollingSessions int `yaml:"max_polling_sessions"`
	// NodeID, when set, starts every long-polling session's sid (`<node_id>.<random>`), so that a balancer in
	// front of several edges can send each polling request to the node holding its session: letters, digits,
	// `-` and `_`, at most 32. Default none, for a single node or a balancer with sticky sessions.
	NodeID string `yaml:"node_id"`
	// AllowedOrigins lists the browser origins that may open a socket: exact origins (`https://meet.example.com`)
	// or one leading wildcard label (`https://*.example.com`). Cookies ride along on cross-site upgrades, so this
	// is what stops cross-site WebSocket hijacking. Empty: only an Origin equal to the request's Host passes.
	// `*` allows every origin and is meant for development only.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// RequireOrigin refuses upgrades without an Origin header. Off by default: non-browser clients send none, and
	// a request without Origin cannot be a cross-site browser request.
	RequireOrigin bool `yaml:"require_origin"`
	// JWT verifies the conference tokens, with the same fields as auth.jwt (keys, JWKS, issuer, leeway).
	// Defaults: algorithms [HS256] and audience `socketio`, as the conference backend signs
	// (JWT_SOCKETIO_SECRET, JWT_SOCKETIO_ISS); the audience is always checked.
	JWT token.JWTConfig `yaml:"jwt"`
	// CookiePrefix is the token cookie's name before the conference's content_id. Default `socket_io_token_`.
	CookiePrefix string `yaml:"cookie_prefix"`
	// MaxCookieTries bounds how many token cookies are verified when the conference is not in the registry and the
	// right cookie must be found by its `room` claim. Default 8.
	MaxCookieTries int `yaml:"max_cookie_tries"`
	// RequireRegistry refuses conferences that were not announced through the admin API. Off by default: the
	// token's own `room` and `content_id` then identify the conference.
	RequireRegistry bool `yaml:"require_registry"`
	// DefaultWaitingRoom is whether a conference missing from the registry has a waiting room. Default true.
	DefaultWaitingRoom *bool `yaml:"default_waiting_room"`
	// ReadLimit is the largest frame a client may send, in bytes. Larger frames close the socket with 1009.
	// Default 65536.
	ReadLimit int64 `yaml:"read_limit"`
	// ReadBufferSize is the per-connection read buffer in bytes; frames larger than it are read in pieces.
	// Default 512: idle sockets are most of them, and the HTTP server already buffers underneath.
	ReadBufferSize int `yaml:"read_buffer_size"`
	// MaxChatLength bounds a chat message, in characters. Default 2000.
	MaxChatLength int `yaml:"max_chat_length"`
	// ChatHistory is how many recent chat messages a joining member receives. Default 50; a negative value keeps
	// none.
	ChatHistory int `yaml:"chat_history"`
	// MessageRate is the sustained number of messages a connection may send per second (a token bucket).
	// Default 10.
	MessageRate float64 `yaml:"message_rate"`
	// MessageBurst is the bucket size: how many messages may arrive at once. Default 20.
	MessageBurst int `yaml:"message_burst"`
	// MaxStrikes is how many refused messages (bad JSON, unknown events, rate-limited messages) a connection may
	// accumulate before it is closed with 1008. One strike is forgiven every StrikeDecay. Default 10.
	MaxStrikes int `yaml:"max_strikes"`
	// StrikeDecay is how often one strike is forgiven. Default 10s.
	StrikeDecay time.Duration `yaml:"strike_decay"`
	// MaxConnsPerUser bounds one user's simultaneous sockets (tabs, devices) on all the nodes sharing the hub: the
	// hub counts them. Default 5.
	MaxConnsPerUser int `yaml:"max_conns_per_user"`
	// MaxConnsPerConference bounds one conference's sockets on this node. Default 5000.
	MaxConnsPerConference int `yaml:"max_conns_per_conference"`
	// MaxConns bounds all signaling sockets on this node. Default 100000.
	MaxConns int `yaml:"max_conns"`
	// PingInterval is how often the server pings each socket. Default 25s.
	PingInterval time.Duration `yaml:"ping_interval"`
	// IdleTimeout closes a socket from which nothing (not even a pong) arrived for this long. It must exceed
	// PingInterval. Default 60s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// WriteTimeout bounds one write to a socket; a client that cannot take a frame in time is dropped.
	// Default 10s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// HandshakeTimeout bounds the WebSocket handshake. Default 10s.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// SendQueue bounds the messages waiting to be written to one socket. A client that lets it fill up is
	// dropped with 1008 "client too slow", so one slow client never delays the others. Default 256.
	SendQueue int `yaml:"send_queue"`
	// ReconnectGrace keeps a disconnected waiting participant's place for this long, so a reconnect does not
	// send them to the back of the queue. Default 30s; a negative value removes them at once.
	ReconnectGrace time.Duration `yaml:"reconnect_grace"`
	// TokenExpiryWarning is how long before the token expires the client gets `token_expiring` and may send
	// `refresh_token`. Default 60s.
	TokenExpiryWarning time.Duration `yaml:"token_expiry_warning"`
}

// Defaults.
const (
	defaultPath             = "/ws"
	defaultSocketIOPath     = "/socket.io/"
	defaultCookiePrefix     = "socket_io_token_"
	defaultMaxCookieTries   = 8
	defaultReadLimit        = 64 << 10
	defaultReadBufferSize   = 512
	defaultMaxChatLength    = 2000
	defaultChatHistory      = 50
	defaultMessageRate      = 10
	defaultMessageBurst     = 20
	defaultMaxStrikes       = 10
	defaultStrikeDecay      = 10 * time.Second
	defaultMaxConnsPerUser  = 5
	defaultMaxConnsPerConf  = 5000
	defaultMaxConns         = 100000
	defaultPingInterval     = 25 * time.Second
	defaultIdleTimeout      = 60 * time.Second
	defaultWriteTimeout     = 10 * time.Second
	defaultHandshakeTimeout = 10 * time.Second
	defaultSendQueue        = 256
	defaultMaxPolling       = 10000
	defaultReconnectGrace   = 30 * time.Second
	defaultExpiryWarning    = 60 * time.Second
	defaultAudience         = "socketio"
	maxRoomNameBytes        = 256
	maxContentIDBytes       = 128
	minReadBufferSize       = 256 // a control frame and its header must fit
)

// SetDefaults fills zero values. New calls it on its own copy, so callers need not.
func (c *Config) SetDefaults() {
	setDefault(&c.Path, defaultPath)
	setDefault(&c.SocketIOPath, defaultSocketIOPath)
	setDefault(&c.CookiePrefix, defaultCookiePrefix)
	setDefault(&c.MaxCookieTries, defaultMaxCookieTries)
	if c.DefaultWaitingRoom == nil {
		t := true
		c.DefaultWaitingRoom = &t
	}
	setDefault(&c.ReadLimit, defaultReadLimit)
	setDefault(&c.ReadBufferSize, defaultReadBufferSize)
	setDefault(&c.MaxChatLength, defaultMaxChatLength)
	setDefault(&c.ChatHistory, defaultChatHistory)
	setDefault(&c.MessageRate, defaultMessageRate)
	setDefault(&c.MessageBurst, defaultMessageBurst)
	setDefault(&c.MaxStrikes, defaultMaxStrikes)
	setDefault(&c.StrikeDecay, defaultStrikeDecay)
	setDefault(&c.MaxConnsPerUser, defaultMaxConnsPerUser)
	setDefault(&c.MaxConnsPerConference, defaultMaxConnsPerConf)
	setDefault(&c.MaxConns, defaultMaxConns)
	setDefault(&c.PingInterval, defaultPingInterval)
	setDefault(&c.IdleTimeout, defaultIdleTimeout)
	setDefault(&c.WriteTimeout, defaultWriteTimeout)
	setDefault(&c.HandshakeTimeout, defaultHandshakeTimeout)
	setDefault(&c.SendQueue, defaultSendQueue)
	setDefault(&c.MaxPollingSessions, defaultMaxPolling)
	setDefault(&c.ReconnectGrace, defaultReconnectGrace)
	setDefault(&c.TokenExpiryWarning, defaultExpiryWarning)
	if len(c.JWT.Algorithms) == 0 {
		c.JWT.Algorithms = []string{"HS256"}
	}
	setDefault(&c.JWT.Audience, defaultAudience)
	c.JWT.SetDefaults()
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Validate checks a config after SetDefaults. Messages name the field with its YAML path.
func (c *Config) Validate() error {
	if !strings.HasPrefix(c.Path, "/") {
		return fmt.Errorf("'signaling.path' must start with '/', got %q", c.Path)
	}
	if c.SocketIOPath != "off" && (!strings.HasPrefix(c.SocketIOPath, "/") || c.SocketIOPath == c.Path) {
		return fmt.Errorf("'signaling.socketio_path' must start with '/' and differ from 'signaling.path', or be \"off\"; got %q", c.SocketIOPath)
	}
	if c.NodeID != "" && !validNodeID(c.NodeID) {
		return fmt.Errorf("'signaling.node_id' must be at most 32 letters, digits, '-' or '_', got %q", c.NodeID)
	}
	for i, o := range c.AllowedOrigins {
		if o == "*" {
			continue
		}
		if _, err := parseOriginPattern(o); err != nil {
			return fmt.Errorf("'signaling.allowed_origins[%d]' %w", i, err)
		}
	}
	if !isToken(c.CookiePrefix) {
		return fmt.Errorf("'signaling.cookie_prefix' must be a plain cookie name, got %q", c.CookiePrefix)
	}
	if err := c.JWT.Validate("signaling.jwt"); err != nil {
		return err
	}
	positive := []struct {
		name string
		v    int64
	}{
		{"max_cookie_tries", int64(c.MaxCookieTries)},
		{"read_limit", c.ReadLimit},
		{"max_chat_length", int64(c.MaxChatLength)},
		{"message_burst", int64(c.MessageBurst)},
		{"max_strikes", int64(c.MaxStrikes)},
		{"strike_decay", int64(c.StrikeDecay)},
		{"max_conns_per_user", int64(c.MaxConnsPerUser)},
		{"max_conns_per_conference", int64(c.MaxConnsPerConference)},
		{"max_conns", int64(c.MaxConns)},
		{"ping_interval", int64(c.PingInterval)},
		{"idle_timeout", int64(c.IdleTimeout)},
		{"write_timeout", int64(c.WriteTimeout)},
		{"handshake_timeout", int64(c.HandshakeTimeout)},
		{"send_queue", int64(c.SendQueue)},
		{"token_expiry_warning", int64(c.TokenExpiryWarning)},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return fmt.Errorf("'signaling.%s' must be greater than zero", p.name)
		}
	}
	if c.MessageRate <= 0 {
		return errors.New("'signaling.message_rate' must be greater than zero")
	}
	if c.ReadBufferSize < minReadBufferSize {
		return fmt.Errorf("'signaling.read_buffer_size' must be at least %d", minReadBufferSize)
	}
	if c.ReadLimit < 1024 {
		return errors.New("'signaling.read_limit' must be at least 1024: a token refresh must fit")
	}
	if c.IdleTimeout <= c.PingInterval {
		return errors.New("'signaling.idle_timeout' must be greater than 'signaling.ping_interval'")
	}
	return nil
}

// originPattern is one allow-list entry: scheme, and host (with port) either exact or as a suffix after `*.`.
type originPattern struct {
	scheme, host string
	wildcard     bool
}

func parseOriginPattern(s string) (originPattern, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return originPattern{}, fmt.Errorf("must be an origin like https://meet.example.com, got %q", s)
	}
	p := originPattern{scheme: strings.ToLower(u.Scheme), host: strings.ToLower(u.Host)}
	if rest, ok := strings.CutPrefix(p.host, "*."); ok {
		if rest == "" || strings.Contains(rest, "*") {
			return originPattern{}, fmt.Errorf("must have a wildcard only as its first label, got %q", s)
		}
		p.host, p.wildcard = "."+rest, true
	} else if strings.Contains(p.host, "*") {
		return originPattern{}, fmt.Errorf("must have a wildcard only as its first label, got %q", s)
	}
	return p, nil
}

// isToken reports whether s is a non-empty RFC 7230 token, which cookie names must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChar(s[i]) {
			return false
		}
	}
	return true
}

// tokenChar reports whether c may appear in an RFC 7230 token.
func tokenChar(c byte) bool {
	return c > ' ' && c < 0x7f && strings.IndexByte("()<>@,;:\\\"/[]?={}", c) < 0
}
