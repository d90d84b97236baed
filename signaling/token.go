package signaling

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hlsedge/hlsedge/authz/token"
)

// Identity is who a verified token says the client is. It comes from the token only: the seed trusted a
// client-sent email, which let anyone take anyone's place in the queue.
type Identity struct {
	Name      string `json:"name"`
	Email     string `json:"email"`
	ID        string `json:"id,omitempty"`
	Avatar    string `json:"avatar,omitempty"`
	Moderator bool   `json:"moderator"`
}

// key is what limits and the waiting list know a user by: the user id when the token has one, else the email.
func (id *Identity) key() string {
	if id.ID != "" {
		return "id:" + id.ID
	}
	return "email:" + strings.ToLower(id.Email)
}

// Grant is a verified token's content.
type Grant struct {
	Identity
	Room      string
	ContentID string
	Expires   time.Time
}

// flexString accepts a JSON string or number (the backend's ids are either), and null as empty.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	switch {
	case bytes.Equal(b, []byte("null")):
		*f = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
	default:
		if _, err := strconv.ParseFloat(string(b), 64); err != nil {
			return ErrClaim
		}
		*f = flexString(b)
	}
	return nil
}

// tokenClaims is the seed's claim set: get_encoded_socketio_jwt.
type tokenClaims struct {
	jwt.RegisteredClaims
	Context struct {
		User struct {
			Name   string     `json:"name"`
			Email  string     `json:"email"`
			ID     flexString `json:"id"`
			Avatar string     `json:"avatar"`
		} `json:"user"`
	} `json:"context"`
	Room      string     `json:"room"`
	ContentID flexString `json:"content_id"`
	Moderator bool       `json:"moderator"`
}

// maxTokenBytes refuses longer tokens before any parsing.
const maxTokenBytes = 8192

// verifier maps the seed's claims onto a Grant; signature, keys and registered claims are token.JWTVerifier's.
type verifier struct {
	jwt    *token.JWTVerifier
	leeway time.Duration
}

// newVerifier builds the verifier of a defaulted, validated config and, with a JWKS, starts its refresh, which
// close stops.
func newVerifier(c *token.JWTConfig, log *slog.Logger) (*verifier, error) {
	v, err := token.NewJWTVerifier(c, log)
	if err != nil {
		return nil, fmt.Errorf("'signaling.jwt': %w", err)
	}
	return &verifier{jwt: v, leeway: v.Leeway()}, nil
}

func (v *verifier) close() { v.jwt.Close() }

// verify checks the token and returns the identity and conference it names. Whether that conference is the
// one asked for is the caller's check.
func (v *verifier) verify(tok string, now time.Time) (*Grant, error) {
	if tok == "" {
		return nil, ErrNoToken
	}
	if len(tok) > maxTokenBytes {
		return nil, ErrMalformed
	}
	var c tokenClaims
	if _, err := v.jwt.Verify(tok, &c, now); err != nil {
		return nil, err
	}
	u := &c.Context.User
	if u.Email == "" && u.ID == "" {
		return nil, ErrNoIdentity
	}
	if c.Room == "" || len(c.Room) > maxRoomNameBytes || len(c.ContentID) > maxContentIDBytes {
		return nil, ErrClaim
	}
	return &Grant{
		Identity:  Identity{Name: u.Name, Email: u.Email, ID: string(u.ID), Avatar: u.Avatar, Moderator: c.Moderator},
		Room:      c.Room,
		ContentID: string(c.ContentID),
		Expires:   c.ExpiresAt.Time,
	}, nil
}
