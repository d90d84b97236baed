package authz

import (
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
// playlists, it appends what AppendChildQuery does. It allocates nothing: it runs on every playlist request.
func (a *Authorizer) AppendMediaQuery(dst []byte, req *Request, d *Decision, now time.Time, pl playlist.Timing) []byte {
	ttl, ok := a.mediaTTL(pl)
	if !ok || !d.Allowed() || d.pass || !d.mint {
		return a.AppendChildQuery(dst, req, d, now)
	}
	ch := req.Channel
	if len(ch) == 0 {
		ch = a.channelFromPath(req.Path)
	}
	// Fast path: no allocation.
	exp := now.Add(ttl + time.Second - 1).Unix() // whole seconds, never short of ttl
	if pl.Live {
		// Rounded up to a grid of half the window, so that the reloads within one cell carry byte-identical
		// URLs: players cache keys and init sections by URL, and the decision cache keys on the token's text.
		grid := max(int64(ttl/2/time.Second), 1)
		exp = (exp + grid - 1) / grid * grid
	}
	if limit := now.Unix() + a.edgeMaxTTL; exp > limit {
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
	out, err := a.edge.AppendChild(dst, ch, &et)
	if err != nil {
		// The decision was made for this channel, so it fits; should it not, the viewer's lifetime will do.
		return a.AppendChildQuery(dst[:n], req, d, now)
	}
	return out
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
