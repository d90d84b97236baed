package fleet

import "strings"

// Key layout, with the default prefix. The part in braces is the hash tag: Redis Cluster places a key by it
// alone, so everything one script touches shares a slot.
//
//	{hlsedge:revoke}                   HASH  revocation id -> expiry (unix ms, 0 never) "\n" data
//	{hlsedge:revoke}:exp               ZSET  revocation id scored by expiry, to prune
//	{hlsedge:revoke}:ch                channel of revocation events
//	{hlsedge:user:USER}:sessions       ZSET  session member scored by last seen (unix ms)
//	{hlsedge:user:USER}:conns          ZSET  signaling connection scored by last refresh (unix ms)
//	{hlsedge:confs}                    HASH  room -> conference (the caller's encoding)
//	{hlsedge:confs}:ch                 channel of registry events
//	{hlsedge:conf:ROOM}:RUN:waiting    HASH  participant key -> the caller's entry
//	{hlsedge:conf:ROOM}:RUN:decided    HASH  participant key -> the caller's decision
//	{hlsedge:conf:ROOM}:RUN:chat       LIST  chat history, capped
//	{hlsedge:conf:ROOM}:RUN:ch         channel of the conference run's events
//	{hlsedge:conf:ROOM}:RUN:members    ZSET  session connected to the run scored by lease expiry (unix ms)
//	{hlsedge:conf:ROOM}:RUN:present    HASH  participant key "\n" holder -> until (unix ms): who keeps a place
//	{hlsedge:nodes}                    HASH  node -> expiry (unix ms) "\n" the node's info
//	{hlsedge:nodes}:exp                ZSET  node scored by expiry, to prune
//	{hlsedge:probe}:NODE:N             channel a member probes its own subscription on
//
// ROOM, RUN (the content id) and USER are percent-escaped (see escByte), so that no value can end the hash tag
// early or run into the next part.

// tagged returns "{" prefix kind id "}" suffix.
func (c *Client) tagged(kind, id, suffix string) string {
	var b strings.Builder
	b.Grow(len(c.prefix) + len(kind) + len(id) + len(suffix) + 8)
	b.WriteByte('{')
	b.WriteString(c.prefix)
	b.WriteString(kind)
	if id != "" {
		b.WriteByte(':')
		writeEscaped(&b, id)
	}
	b.WriteByte('}')
	b.WriteString(suffix)
	return b.String()
}

// UserKey returns the key of one of a user's sets ("sessions", "conns"), hash-tagged by user.
func (c *Client) UserKey(user, set string) string { return c.tagged("user", user, ":"+set) }

// ConfKey returns the key of one part ("waiting", "decided", "chat", "ch") of a conference run, hash-tagged by
// room so that every run of a room lives in one slot.
func (c *Client) ConfKey(room, run, part string) string {
	var b strings.Builder
	b.WriteByte(':')
	writeEscaped(&b, run)
	b.WriteByte(':')
	b.WriteString(part)
	return c.tagged("conf", room, b.String())
}

// escByte tells what would break the key layout: braces (hash tag), ':' (separator), '%' (the escape), and
// spaces and control characters, which also keep keys printable in redis-cli.
func escByte(c byte) bool {
	return c <= ' ' || c == 0x7f || c == '{' || c == '}' || c == ':' || c == '%'
}

func writeEscaped(b *strings.Builder, s string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if escByte(c) {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
}
