package signaling

import (
	"errors"
	"time"
)

// The split follows Centrifuge's: each Server keeps the sockets connected to it (node.go, its "node"), and a Hub
// keeps what the nodes serving a conference share and carries messages between them (its Broker and
// PresenceManager). A hub never holds a socket. It knows sessions by ID, and every message it sends, even to a
// session on the node that called it, goes out as a Delivery that each node routes to the sockets it holds: a
// participant on one node admitted by a moderator on another gets the grant the same way as on one node.

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

// Session is one socket as a hub knows it: plain values, so that a hub can store and publish it for nodes that
// do not hold the socket.
type Session struct {
	// ID is unique among all the nodes sharing the hub.
	ID string
	// User is the identity the socket's token proved.
	User Identity
}

// Role is what a session is in its conference. Nodes keep it per socket to route deliveries; the hub keeps it
// to decide what a session may do.
type Role uint8

// Roles. The zero Role is not one: in a Delivery it means "unchanged".
const (
	RoleNone      Role = iota + 1 // connected, not in the waiting room
	RoleModerator                 // receives the waiting list and decides
	RoleWaiting                   // in the waiting room, or held for it while reconnecting
	RoleAdmitted                  // let in by a moderator or by a conference without a waiting room
	RoleRejected                  // turned away for this run
)

// chats reports whether a session in role r sends and receives chat: moderators, the waiting room and those
// admitted, as in the seed's chat_{room}.
func (r Role) chats() bool { return r == RoleModerator || r == RoleWaiting || r == RoleAdmitted }

// Audience says which of a conference's sessions a Delivery is for.
type Audience uint8

// Audiences.
const (
	ToSessions   Audience = iota // the sessions listed in Delivery.Sessions
	ToModerators                 // every session in RoleModerator
	ToChat                       // every session whose role chats
	ToAll                        // every session, whatever its role
)

// Delivery is what a hub hands to every node for one conference run. A node applies it to the sockets it holds
// among the addressed sessions, in this order: Role, then Msg, then End.
type Delivery struct {
	Conf     ConfKey
	To       Audience
	Sessions []string // for ToSessions
	// Role, when not zero, is the addressed sessions' new role: it changes which later deliveries reach them.
	Role Role
	// Msg, when set, is sent to the addressed sessions.
	Msg *Message
	// End, when set, closes the addressed sockets with CloseConferenceEnded and End as the reason.
	End string
}

// Receiver is a node's side of a hub.
type Receiver interface {
	// Deliver hands d to the addressed sockets this node holds. It must not block (it only queues) and must not
	// keep d. A hub calls it with one conference's deliveries in the order it decided them.
	Deliver(d *Delivery)
}

// Hub is the conference state the nodes serving a conference share: the registry, per-user connection counts,
// presence, waiting lists, decisions and chat history, and the delivery of events to sessions wherever they are
// connected. The memory hub a server keeps by default serves one process; a Redis hub serves a fleet with the
// same calls.
//
// Errors other than the package's sentinels mean the shared state could not be reached; implementations bound
// every call with their own timeouts. Disconnect and Release cannot fail the caller: a hub that loses one lets
// the entry expire.
type Hub interface {
	// Attach starts handing every delivery to r, until detach is called. A server attaches its node once, in New.
	Attach(r Receiver) (detach func())

	// PutConference announces the running conference for a name, replacing an earlier run. The sessions of a
	// replaced run are sent End; ended is how many there were.
	PutConference(c Conference) (ended int, err error)
	// DeleteConference ends the running conference for a name (ErrNotRunning when there is none) and sends End to
	// its sessions.
	DeleteConference(room string) (c Conference, ended int, err error)
	// LookupConference returns the running conference for a name.
	LookupConference(room string) (c Conference, ok bool, err error)
	// Conferences lists the registry, by name.
	Conferences() ([]Conference, error)

	// Reserve counts a session against its user's limit of simultaneous sockets, before the upgrade; over the
	// limit it returns ErrTooManyUser. Release gives the place back.
	Reserve(s Session, perUser int) error
	Release(s Session)

	// Connect makes an upgraded session present in its conference. Moderators get the waiting list and the chat
	// history at once.
	Connect(k ConfKey, s Session) error
	// Disconnect removes a session whose socket is gone. A waiting participant keeps their place for the grace
	// period.
	Disconnect(k ConfKey, s Session)
	// JoinWaiting puts a participant in the waiting room, or admits them at once when the conference has none,
	// when they were admitted before, or when a decision was taken while they were reconnecting.
	JoinWaiting(k ConfKey, s Session) error
	// LeaveWaiting takes a participant out of the waiting room for good.
	LeaveWaiting(k ConfKey, s Session) error
	// Accept admits one waiting participant (by email) or everyone; by must be a moderator. It returns how many
	// were admitted.
	Accept(k ConfKey, by Session, email string, everyone bool) (int, error)
	// Reject turns one waiting participant away.
	Reject(k ConfKey, by Session, email, reason string) error
	// Chat sends a message to every session of the conference whose role chats, and keeps it for the history.
	Chat(k ConfKey, from Session, text string, at time.Time) error
	// Close stops the hub's timers. The owner calls it after every server using the hub is closed.
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
