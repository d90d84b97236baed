package signaling

import (
	"errors"
	"time"
)

// ConfKey identifies one run of a conference: names are reused, content_id is not.
type ConfKey struct {
	Room      string
	ContentID string
}

// Conference is a registry entry: the conference currently running under a name.
type Conference struct {
	// Room is the conference name clients ask for.
	Room string `json:"room"`
	// ContentID tells this run apart from earlier ones with the same name; the token cookie is named after it.
	ContentID string `json:"content_id"`
	// WaitingRoom holds participants until a moderator admits them. Without it they are admitted at once.
	WaitingRoom bool `json:"waiting_room"`
}

// Member is one local connection as the hub sees it. Both methods must not block: the hub calls them while it
// fans out.
type Member interface {
	// Who returns the identity the member's token proved.
	Who() *Identity
	// Send queues m; a member that cannot keep up drops itself with a reason.
	Send(m *Message)
}

// Hub keeps conference state and delivers events to members. The in-memory hub serves one node; a Redis-backed
// one for several nodes implements the same calls, publishing what memHub delivers directly.
type Hub interface {
	// PutConference announces the running conference for a name, replacing an earlier run. Members of a replaced
	// run are returned so that the caller can disconnect them.
	PutConference(c Conference) (ended []Member)
	// DeleteConference ends the running conference for a name and returns its members.
	DeleteConference(room string) (c Conference, ended []Member, ok bool)
	// LookupConference returns the running conference for a name.
	LookupConference(room string) (Conference, bool)
	// Conferences lists the registry.
	Conferences() []Conference

	// Connect adds a member to its conference. Moderators get the waiting list and the chat history at once.
	Connect(k ConfKey, m Member)
	// Disconnect removes a member whose socket is gone. A waiting participant keeps their place for the grace
	// period.
	Disconnect(k ConfKey, m Member)
	// JoinWaiting puts a participant in the waiting room, or admits them at once when the conference has none,
	// when they were admitted before, or when a decision was taken while they were reconnecting.
	JoinWaiting(k ConfKey, m Member) error
	// LeaveWaiting takes a participant out of the waiting room for good.
	LeaveWaiting(k ConfKey, m Member) error
	// Accept admits one waiting participant (by email) or everyone; by must be a moderator. It returns how many
	// were admitted.
	Accept(k ConfKey, by Member, email string, everyone bool) (int, error)
	// Reject turns one waiting participant away.
	Reject(k ConfKey, by Member, email, reason string) error
	// Chat sends a message to every chat member of the conference: the waiting room, admitted participants still
	// connected and the moderators.
	Chat(k ConfKey, from Member, text string, at time.Time) error
	// Close stops the hub's timers.
	Close()
}

// Errors the event layer reports back to the client.
var (
	ErrNotModerator = errors.New("you don't have permission to do this: moderators only")
	ErrNoSuchWaiter = errors.New("no waiting participant matches the query")
	ErrNotJoined    = errors.New("join the waiting room first")
	ErrRejected     = errors.New("a moderator turned you away from this conference")
	ErrModerator    = errors.New("moderators do not wait")
)

// Event names, the seed's where it had them.
const (
	evConnected              = "connected"
	evError                  = "error"
	evJoinWaitingRoom        = "join_waiting_room"
	evJoinWaitingResponse    = "join_waiting_room_response"
	evLeaveWaitingRoom       = "leave_waiting_room"
	evAcceptParticipant      = "accept_participant"
	evAcceptResponse         = "accept_participant_response"
	evRejectParticipant      = "reject_participant"
	evRejectResponse         = "reject_participant_response"
	evChatMessage            = "chat_message"
	evChatHistory            = "chat_history"
	evWaitingRoomList        = "waiting_room_list"
	evWaitingJoined          = "waiting_participant_joined"
	evWaitingLeft            = "waiting_participant_left"
	evTokenExpiring          = "token_expiring"
	evRefreshToken           = "refresh_token"
	evRefreshTokenResponse   = "refresh_token_response"
	joinRoomPrefix           = "join_room_"
	leftAdmitted             = "admitted"
	leftRejected             = "rejected"
	leftDisconnected         = "disconnected"
	leftLeft                 = "left"
	maxRejectReasonChars     = 200
	defaultRejectReason      = "the moderator declined your request"
	conferenceEndedReason    = "conference ended"
	conferenceReplacedReason = "conference replaced by a new run"
)

// Participant is one waiting-list entry as moderators see it.
type Participant struct {
	Name     string `json:"name"`
	Email    string `json:"email"`
	Avatar   string `json:"avatar,omitempty"`
	JoinedAt int64  `json:"joined_at"` // unix milliseconds
}

// ChatFrom is a chat message's author, from their token.
type ChatFrom struct {
	Name      string `json:"name"`
	Email     string `json:"email"`
	Avatar    string `json:"avatar,omitempty"`
	Moderator bool   `json:"moderator"`
}

// ChatMessage is the data of a `chat_message` event the server sends.
type ChatMessage struct {
	From ChatFrom `json:"from"`
	Text string   `json:"text"`
	TS   int64    `json:"ts"` // unix milliseconds
}
