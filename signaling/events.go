package signaling

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/fasthttp/websocket"
)

// Client event payloads. Identity fields a client may send (the seed's `email` in join_waiting_room) are not
// read: who the client is comes from the token.
type (
	roomPayload struct {
		RoomName *string `json:"room_name"`
	}
	acceptPayload struct {
		RoomName       *string `json:"room_name"`
		AcceptEveryone bool    `json:"accept_everyone"`
		Email          string  `json:"email"`
	}
	rejectPayload struct {
		RoomName *string `json:"room_name"`
		Email    string  `json:"email"`
		Reason   string  `json:"reason"`
	}
	chatPayload struct {
		RoomName *string `json:"room_name"`
		Text     *string `json:"text"`
	}
	refreshPayload struct {
		Token string `json:"token"`
	}
)

var (
	errWrongRoomName = errors.New("room_name does not match your conference")
	errBadData       = errors.New("malformed data for this event")
	errUnknownEvent  = errors.New("unknown event")
	errEmptyChat     = errors.New("chat message is empty")
	errLongChat      = errors.New("chat message too long")
	errNoEmail       = errors.New("email or accept_everyone required")
)

// handle runs one client event. Bad input gets an `error` event and a strike; the socket stays open until the
// strikes run out. A Socket.IO event that asks for an ack gets exactly one: with the payload of the event that
// answers it, or without arguments when nothing does.
func (c *conn) handle(frame []byte) {
	now := c.s.clock.Now()
	c.ackID = -1
	if c.sio {
		if !c.nsJoined {
			// A session that began with long polling connects to the namespace with a packet like any other.
			if c.sioNamespace(frame) {
				c.nsJoined = true
				c.join()
			}
			return
		}
		if id, ok := sioAckID(frame); ok {
			c.ackID = int64(id)
		}
		defer c.ackRest()
	}
	if !c.rate.take(now) {
		c.s.m.rateLimited.Inc()
		c.strike("", "rate limit exceeded")
		return
	}
	if c.sio && c.sioControl(frame) {
		return
	}
	ev, data, err := c.codec.Decode(frame)
	if err != nil {
		c.strike("", err.Error())
		return
	}
	hub, k, s := c.s.hub, c.key, c.sess
	switch ev {
	case evJoinWaitingRoom, evLeaveWaitingRoom:
		var p roomPayload
		if !c.decodeRoom(ev, data, &p, &p.RoomName) {
			return
		}
		if ev == evJoinWaitingRoom {
			id, deferred := c.deferJoinAck()
			if err = hub.JoinWaiting(k, s); err != nil && deferred {
				c.reclaimJoinAck(id)
			}
		} else {
			err = hub.LeaveWaiting(k, s)
		}
		if err != nil {
			c.answer(newMessage(evError, errorData(ev, c.s.hubErr(ev, err).Error())))
		}
	case evAcceptParticipant:
		var p acceptPayload
		if !c.decodeRoom(ev, data, &p, &p.RoomName) {
			c.respond(evAcceptResponse, false, "bad request")
			return
		}
		if !p.AcceptEveryone && p.Email == "" {
			c.respond(evAcceptResponse, false, errNoEmail.Error())
			return
		}
		n, err := hub.Accept(k, s, p.Email, p.AcceptEveryone)
		if err != nil {
			c.respond(evAcceptResponse, false, c.s.hubErr(ev, err).Error())
			return
		}
		msg := "admitted 1 participant"
		if p.AcceptEveryone {
			msg = "admitted " + strconv.Itoa(n) + " participants"
		}
		c.respond(evAcceptResponse, true, msg)
	case evRejectParticipant:
		var p rejectPayload
		if !c.decodeRoom(ev, data, &p, &p.RoomName) {
			c.respond(evRejectResponse, false, "bad request")
			return
		}
		if p.Email == "" {
			c.respond(evRejectResponse, false, "email required")
			return
		}
		reason := strings.TrimSpace(p.Reason)
		if !utf8.ValidString(reason) || utf8.RuneCountInString(reason) > maxRejectReasonChars {
			c.respond(evRejectResponse, false, "reason too long")
			return
		}
		if err := hub.Reject(k, s, p.Email, reason); err != nil {
			c.respond(evRejectResponse, false, c.s.hubErr(ev, err).Error())
			return
		}
		c.respond(evRejectResponse, true, "participant rejected")
	case evChatMessage:
		var p chatPayload
		if !c.decodeRoom(ev, data, &p, &p.RoomName) {
			return
		}
		if p.Text == nil {
			c.strike(ev, errBadData.Error())
			return
		}
		text := strings.TrimSpace(*p.Text)
		switch {
		case text == "":
			c.strike(ev, errEmptyChat.Error())
			return
		case utf8.RuneCountInString(text) > c.s.conf().MaxChatLength:
			c.strike(ev, errLongChat.Error())
			return
		}
		if err := hub.Chat(k, s, text, now); err != nil {
			c.answer(newMessage(evError, errorData(ev, c.s.hubErr(ev, err).Error())))
		}
	case evRefreshToken:
		var p refreshPayload
		if !c.decode(ev, data, &p) {
			return
		}
		c.refresh(p.Token)
	default:
		c.strike(ev, errUnknownEvent.Error())
	}
}

// decode unmarshals an event's data; null is an empty payload. A wrong type is a strike.
func (c *conn) decode(ev string, data []byte, v any) bool {
	if string(data) == "null" {
		return true
	}
	if err := json.Unmarshal(data, v); err != nil {
		c.strike(ev, errBadData.Error())
		return false
	}
	return true
}

// decodeRoom is decode plus the room_name check; it strikes on both failures.
func (c *conn) decodeRoom(ev string, data []byte, v any, room **string) bool {
	if !c.decode(ev, data, v) {
		return false
	}
	if *room != nil && **room != c.key.Room {
		c.strike(ev, errWrongRoomName.Error())
		return false
	}
	return true
}

func (c *conn) respond(ev string, ok bool, msg string) {
	c.answer(newMessage(ev, map[string]any{"success": ok, "message": msg}))
}

func errorData(ev, msg string) map[string]any {
	d := map[string]any{"message": msg}
	if ev != "" && len(ev) <= 64 && utf8.ValidString(ev) {
		d["event"] = ev
	}
	return d
}

// strike reports bad input and counts it. Sustained abuse closes the socket with 1008.
func (c *conn) strike(ev, msg string) {
	m := newMessage(evError, errorData(ev, msg))
	c.Send(m)
	if c.ackID >= 0 {
		c.ackErr = m.Data // the ack's payload, unless a `*_response` follows
	}
	c.penalize(msg)
}

// penalize counts one bad message whose answer has been sent, and closes the socket when the strikes run out.
func (c *conn) penalize(msg string) {
	c.s.m.badInput.Inc()
	if !c.strikes.take(c.s.clock.Now()) {
		c.s.m.abuse.Inc()
		reason := "too many bad messages"
		if msg == "rate limit exceeded" {
			reason = "rate limit exceeded"
		}
		c.closeAfterQueue(websocket.ClosePolicyViolation, reason)
	}
}

// refresh replaces the connection's token with a newer one for the same conference and user (Centrifugo's
// model): the socket lives on, and the expiry close moves to the new token's expiry.
func (c *conn) refresh(tok string) {
	now := c.s.clock.Now()
	g, err := c.s.settings().ver.verify(tok, now)
	if err == nil {
		err = checkGrant(g, c.key.Room, c.key.ContentID, true)
	}
	if err == nil && (g.key() != c.sess.User.key() || g.Moderator != c.sess.User.Moderator) {
		err = errors.New("token is for another user or role")
	}
	if err != nil {
		c.answer(newMessage(evRefreshTokenResponse, map[string]any{"success": false, "message": err.Error()}))
		return
	}
	warn := false
	c.mu.Lock()
	if g.Expires.After(c.expires) {
		c.expires = g.Expires
		warn = c.armExpiryLocked(now)
	}
	exp := c.expires
	c.mu.Unlock()
	c.answer(newMessage(evRefreshTokenResponse, map[string]any{"success": true, "expires_at": exp.Unix()}))
	if warn {
		c.warnExpiry()
	}
}
