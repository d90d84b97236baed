package authz

import (
	"net/netip"
	"time"

	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/playlist"
)

// The lifetimes of child tokens. The viewer's token is the refresh token and a child the access token: the
// media-playlist URIs of a master playlist keep the viewer's lifetime (capped by edge.max_ttl), because a
// player never fetches the master again and keeps reloading them; the segments, parts, keys and init sections
// of a live media playlist get a window of a few target durations, minted again on every reload, so that a
// segment URL copied out of a playlist dies within it; those of a VOD playlist live as long as the
// presentation plus a margin. Every child is bounded by the viewer's own expiry.

// AppendMediaQuery appends `param=value` for the segment, part, key and init-section URIs of an allowed
// playlist whose timing is pl (playlist.Template.AppendMedia puts it there). In edge mode it mints a child
// that lives for the playlist's window (see EdgeConfig.SegmentTTLTargets); otherwise, and for master
// playlists, it appends what AppendChildQuery does. It runs on every playlist request, so it mints (an HMAC and
// one allocation) only once per viewer and grid cell; the other reloads in the cell reuse the child.
func (a *Authorizer) AppendMediaQuery(dst []byte, req *Request, d *Decision, now time.Time, pl playlist.Timing) []byte {
	ttl, ok := a.mediaTTL(pl)
	if !ok || !d.Allowed() || d.pass || !d.mint {
		return a.AppendChildQuery(dst, req, d, now)
	}
	ch := req.Channel
	if len(ch) == 0 {
		ch = a.channelFromPath(req.Path)
	}
	// Unix seconds from one read of now: Time.Add and a second Unix call cost more than the rest of a memo hit.
	nowSec, nowNano := now.Unix(), int64(now.Nanosecond())
	exp := nowSec + (nowNano+int64(ttl)+int64(time.Second)-1)/int64(time.Second) // whole seconds, never short of ttl
	if pl.Live {
		// Rounded up to a grid of half the window, so that the reloads within one cell carry byte-identical
		// URLs: players cache keys and init sections by URL, and the decision cache keys on the token's text.
		grid := max(int64(ttl/2/time.Second), 1)
		exp = (exp + grid - 1) / grid * grid
	}
	if limit := nowSec + a.edgeMaxTTL; exp > limit {
		exp = limit
	}
	if d.Expires > 0 && d.Expires < exp {
		exp = d.Expires
	}
	// The credential's id, as in the viewer's own children: the segment's decision derives the device's from it.
	sid := d.base
	if sid == 0 {
		sid = d.SessionID
	}
	et := token.EdgeToken{Expires: exp, SessionID: sid, UserID: d.UserID, Root: d.fp}
	if d.bindIP {
		et.IP = req.ClientIP
	}
	n := len(dst)
	dst = append(dst, a.childParam...)
	dst = append(dst, '=')
	e := d.entry
	if e != nil {
		if m := e.child.Load(); m != nil && m.edge == a.edge && m.exp == exp && m.sid == sid && m.ip == et.IP {
			// Fast path: this viewer's last reload fell in the same grid cell and minted these very bytes.
			return append(dst, m.value...)
		}
	}
	// Slow path: an HMAC, once per viewer and grid cell.
	out, err := a.edge.AppendChild(dst, ch, &et)
	if err != nil {
		// The decision was made for this channel, so it fits; should it not, the viewer's lifetime will do.
		return a.AppendChildQuery(dst[:n], req, d, now)
	}
	if e != nil {
		e.child.Store(&childMemo{edge: a.edge, exp: exp, sid: sid, ip: et.IP, value: string(out[len(dst):])})
	}
	return out
}

// childMemo is the segment-window child last minted for a decision cache entry. The entry fixes the token,
// channel, user and root; the memo holds what may still differ between two requests of the entry (the window's
// expiry, the session id, the bound address) and the signer, which a reload may replace.
type childMemo struct {
	edge  *token.EdgeSigner
	exp   int64
	sid   uint64
	ip    netip.Addr
	value string
}

// mediaTTL is how long the segment tokens of a media playlist with timing pl live; false for a master
// playlist, or when segment windows are off.
func (a *Authorizer) mediaTTL(pl playlist.Timing) (time.Duration, bool) {
	switch {
	case !pl.Media:
		return 0, false
	case !pl.Live:
		return pl.Duration + a.vodMargin, true
	case a.segTargets == 0:
		return 0, false
	case pl.Target > 0:
		return max(time.Duration(a.segTargets)*pl.Target, a.segMin), true
	}
	// A live playlist without EXT-X-TARGETDURATION is broken; its segments' sum still says how long it spans.
	return max(pl.Duration, a.segMin), true
}
