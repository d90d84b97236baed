package redisstate

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/internal/fleet"
)

// Revocation ids: the kind, then the ban's id or the kicked session's id.
const (
	banPrefix  = "ban:"
	kickPrefix = "kick:"
	epochID    = "epoch"
)

// newBanID returns an id no other member will pick: 64 random bits. A counter per node would repeat after a
// restart while the earlier node's bans are still in force.
func newBanID() string { return "b" + randomHex(8) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// banRevocation is b as the fleet stores it.
func banRevocation(b authz.Ban) (fleet.Revocation, error) {
	data, err := json.Marshal(b)
	if err != nil {
		return fleet.Revocation{}, err
	}
	return fleet.Revocation{ID: banPrefix + b.ID, Data: data, Expires: b.Expires}, nil
}

func parseBan(r fleet.Revocation) (authz.Ban, error) {
	var b authz.Ban
	if err := json.Unmarshal(r.Data, &b); err != nil {
		return b, fmt.Errorf("decoding ban: %w", err)
	}
	if b.ID != strings.TrimPrefix(r.ID, banPrefix) {
		return b, errors.New("ban id does not match its revocation")
	}
	return b, nil
}

// kickRecord is one kicked session as the fleet stores it: the refusals that keep it closed, and the session as
// the operator saw it, so that the member that asked another one to close it can answer with it.
type kickRecord struct {
	Session authz.SessionInfo `json:"session"`
	Kicks   []wireKick        `json:"kicks"`
}

// wireKick is authz.Kick with the fingerprint in its printed form and the session id in hex, as the admin API
// shows them.
type wireKick struct {
	SessionID string `json:"sid,omitempty"`
	Token     string `json:"token,omitempty"`
	Channel   string `json:"channel,omitempty"`
	Until     int64  `json:"until"`
}

func newKickRecord(info authz.SessionInfo, ks []authz.Kick) kickRecord {
	r := kickRecord{Session: info, Kicks: make([]wireKick, len(ks))}
	for i, k := range ks {
		w := wireKick{Channel: k.Channel, Until: k.Until}
		if k.SessionID != 0 {
			w.SessionID = sessionIDString(k.SessionID)
		}
		if k.Fingerprint != 0 {
			w.Token = k.Fingerprint.String()
		}
		r.Kicks[i] = w
	}
	return r
}

// kicks returns the record's refusals; entries that do not parse refuse nothing and are left out.
func (r *kickRecord) kicks() []authz.Kick {
	out := make([]authz.Kick, 0, len(r.Kicks))
	for _, w := range r.Kicks {
		k := authz.Kick{Channel: w.Channel, Until: w.Until}
		if w.SessionID != "" {
			k.SessionID, _ = strconv.ParseUint(w.SessionID, 16, 64)
		}
		k.Fingerprint = token.ParseFingerprint(w.Token)
		if k.SessionID != 0 || k.Fingerprint != 0 {
			out = append(out, k)
		}
	}
	return out
}

// until is when the last of the record's refusals ends, in unix nanos; 0 when one never does.
func (r *kickRecord) until() int64 {
	var u int64
	for _, k := range r.Kicks {
		if k.Until == 0 {
			return 0
		}
		u = max(u, k.Until)
	}
	return u
}

func kickRevocation(id string, r kickRecord) (fleet.Revocation, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return fleet.Revocation{}, err
	}
	rev := fleet.Revocation{ID: kickPrefix + id, Data: data}
	if u := r.until(); u != 0 {
		rev.Expires = time.Unix(0, u)
	}
	return rev, nil
}

func parseKick(r fleet.Revocation) (kickRecord, error) {
	var k kickRecord
	if err := json.Unmarshal(r.Data, &k); err != nil {
		return k, fmt.Errorf("decoding kick: %w", err)
	}
	return k, nil
}

// sessionIDString is how the admin API names a session.
func sessionIDString(id uint64) string { return fmt.Sprintf("%016x", id) }

// Control messages, one line per field, the free-form field last:
//
//	kick NODE ID                 close session ID if held here, and share its kicks
//	evict NODE MEMBERS OWNER     close OWNER's sessions whose fingerprint is among MEMBERS (comma-separated)
type control struct {
	op, node string
	id       string   // kick
	members  []string // evict
	owner    string   // evict
}

func (c control) encode() []byte {
	switch c.op {
	case "kick":
		return []byte("kick\n" + c.node + "\n" + c.id)
	default:
		return []byte("evict\n" + c.node + "\n" + strings.Join(c.members, ",") + "\n" + c.owner)
	}
}

func parseControl(p []byte) (control, error) {
	op, rest, _ := strings.Cut(string(p), "\n")
	node, rest, ok := strings.Cut(rest, "\n")
	if !ok || node == "" {
		return control{}, errors.New("control message without a node")
	}
	switch op {
	case "kick":
		if rest == "" || len(rest) > 64 {
			return control{}, errors.New("kick request with a bad session id")
		}
		return control{op: op, node: node, id: rest}, nil
	case "evict":
		members, owner, ok := strings.Cut(rest, "\n")
		if !ok || members == "" || owner == "" {
			return control{}, errors.New("eviction without members or owner")
		}
		return control{op: op, node: node, members: strings.Split(members, ","), owner: owner}, nil
	}
	return control{}, fmt.Errorf("unknown control message %.8q", op)
}
