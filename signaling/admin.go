package signaling

import (
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

// maxAdminBody bounds an admin request body.
const maxAdminBody = 64 << 10

// conferenceRequest is the admin API's body. waiting_room defaults to true: forgetting it must not open a
// conference to everyone.
type conferenceRequest struct {
	Room        string     `json:"room"`
	ContentID   flexString `json:"content_id"`
	WaitingRoom *bool      `json:"waiting_room"`
}

// ServeConferencesAPI is the conference registry for the conference backend: POST announces the running
// conference for a name ({room, content_id, waiting_room}), DELETE ends it ({room} or ?room=), GET lists them.
// Sockets of an ended or replaced run are closed with CloseConferenceEnded on every node sharing the hub. Mount it
// on the admin listener behind its bearer auth.
func (s *Server) ServeConferencesAPI(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set("Cache-Control", "no-store")
	switch {
	case ctx.IsGet():
		cs, err := s.hub.Conferences()
		if err != nil {
			apiError(ctx, fasthttp.StatusServiceUnavailable, s.hubErr("list conferences", err).Error())
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"conferences": cs})
	case ctx.IsPost():
		var req conferenceRequest
		if !readJSON(ctx, &req) {
			return
		}
		if msg := checkConference(req.Room, string(req.ContentID)); msg != "" {
			apiError(ctx, fasthttp.StatusBadRequest, msg)
			return
		}
		c := Conference{Room: req.Room, ContentID: string(req.ContentID), WaitingRoom: req.WaitingRoom == nil || *req.WaitingRoom}
		ended, err := s.hub.PutConference(c)
		if err != nil {
			apiError(ctx, fasthttp.StatusServiceUnavailable, s.hubErr("put conference", err).Error())
			return
		}
		s.log.Info("signaling: conference announced", "room", c.Room, "waiting_room", c.WaitingRoom, "ended_sockets", ended)
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"conference": c, "ended_sockets": ended})
	case ctx.IsDelete():
		room := string(ctx.QueryArgs().Peek("room"))
		if room == "" && len(ctx.PostBody()) > 0 {
			var req conferenceRequest
			if !readJSON(ctx, &req) {
				return
			}
			room = req.Room
		}
		if room == "" {
			apiError(ctx, fasthttp.StatusBadRequest, "'room' is required")
			return
		}
		c, ended, err := s.hub.DeleteConference(room)
		switch {
		case errors.Is(err, ErrNotRunning):
			apiError(ctx, fasthttp.StatusNotFound, "no running conference with that name")
			return
		case err != nil:
			apiError(ctx, fasthttp.StatusServiceUnavailable, s.hubErr("delete conference", err).Error())
			return
		}
		s.log.Info("signaling: conference ended", "room", c.Room, "ended_sockets", ended)
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"conference": c, "ended_sockets": ended})
	default:
		ctx.Response.Header.Set("Allow", "GET, POST, DELETE")
		apiError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed")
	}
}

func checkConference(room, contentID string) string {
	switch {
	case room == "" || len(room) > maxRoomNameBytes || !utf8.ValidString(room) || strings.ContainsFunc(room, isControl):
		return "'room' must be a non-empty name of at most 256 bytes"
	case contentID == "" || len(contentID) > maxContentIDBytes || !isToken(contentID):
		return "'content_id' must be non-empty, at most 128 bytes, and valid in a cookie name"
	}
	return ""
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }

func readJSON(ctx *fasthttp.RequestCtx, v any) bool {
	b := ctx.PostBody()
	if len(b) > maxAdminBody {
		apiError(ctx, fasthttp.StatusRequestEntityTooLarge, "body too large")
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		apiError(ctx, fasthttp.StatusBadRequest, "body must be a JSON object {room, content_id, waiting_room}")
		return false
	}
	return true
}

func apiError(ctx *fasthttp.RequestCtx, status int, msg string) {
	writeJSON(ctx, status, map[string]any{"error": msg})
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = fasthttp.StatusInternalServerError, []byte(`{"error":"encoding failed"}`)
	}
	ctx.SetContentType("application/json")
	ctx.SetStatusCode(status)
	ctx.SetBody(append(b, '\n'))
}
