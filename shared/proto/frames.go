package proto

import (
	"encoding/json"
	"time"
)

// Frame types.
const (
	TypeJoin     = "join"
	TypeLeave    = "leave"
	TypeSend     = "send"
	TypeTyping   = "typing"
	TypeHello    = "hello"
	TypeJoined   = "joined"
	TypeMessage  = "message"
	TypeAck      = "ack"
	TypePresence = "presence"
	TypeError    = "error"
)

// TypingEvery is the least time between two typing frames relayed for one user and room.
const TypingEvery = 2 * time.Second

// Error codes carried by error frames.
const (
	CodeBadFrame    = "bad_frame"
	CodeUnknownType = "unknown_type"
	CodeNotJoined   = "not_joined"
	CodeEmptyText   = "empty_text"
	CodeTextTooLong = "text_too_long"
	CodeRateLimited = "rate_limited"
	// CodeInvalidRoom is shared with the HTTP API.
)

// WebSocket close codes.
const (
	CloseTokenExpired  = 4001 // the access token passed its exp
	CloseUnauthorized  = 4002 // missing or invalid token
	CloseRevoked       = 4003 // the session was revoked
	CloseSlowConsumer  = 4008 // the client did not read fast enough
	CloseGoingAway     = 1001
	ClosePolicy        = 1008
	CloseInvalidUTF8   = 1007
	CloseMessageTooBig = 1009
)

// Frame is any frame, flat: every field of every frame type. Decode incoming frames into it and
// switch on Type. After is a pointer because "after":0 (from the first message) differs from no
// after at all.
type Frame struct {
	Type      string    `json:"type"`
	Room      string    `json:"room"`
	After     *uint64   `json:"after"`
	ID        string    `json:"id"`
	Text      string    `json:"text"`
	Seq       uint64    `json:"seq"`
	LastSeq   uint64    `json:"last_seq"`
	From      string    `json:"from"`
	TS        time.Time `json:"ts"`
	User      UserField `json:"user"`
	Session   string    `json:"session"`
	ExpiresAt time.Time `json:"expires_at"`
	Online    []string  `json:"online"`
	Code      string    `json:"code"`
	Message   string    `json:"message"`
	Ref       string    `json:"ref"`
}

// UserField is the "user" of a received frame, which is an object in hello and a bare name in
// typing. Either way Name is set.
type UserField struct {
	User
}

// UnmarshalJSON accepts a user object or a name.
func (u *UserField) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &u.Name)
	}
	return json.Unmarshal(b, &u.User)
}

// Join asks to receive a room's messages; with After, first every message with seq > *After.
type Join struct {
	Type  string  `json:"type"`
	Room  string  `json:"room"`
	After *uint64 `json:"after,omitempty"`
}

// Leave stops a room's messages.
type Leave struct {
	Type string `json:"type"`
	Room string `json:"room"`
}

// Send posts text to a room. ID is chosen by the client and makes retries safe.
type Send struct {
	Type string `json:"type"`
	Room string `json:"room"`
	ID   string `json:"id"`
	Text string `json:"text"`
}

// Typing says the sender is typing (client to server) or who is typing (server to client).
type Typing struct {
	Type string `json:"type"`
	Room string `json:"room"`
	User string `json:"user,omitempty"`
}

// Hello is the server's first frame on a socket.
type Hello struct {
	Type      string    `json:"type"`
	User      User      `json:"user"`
	Session   string    `json:"session"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Joined confirms a join and tells the room's newest seq.
type Joined struct {
	Type    string `json:"type"`
	Room    string `json:"room"`
	LastSeq uint64 `json:"last_seq"`
}

// Message is one stored chat message. Over the WebSocket its Type is "message"; in the HTTP
// history it has no type.
type Message struct {
	Type string    `json:"type,omitempty"`
	Room string    `json:"room"`
	Seq  uint64    `json:"seq"`
	ID   string    `json:"id"`
	From string    `json:"from"`
	Text string    `json:"text"`
	TS   time.Time `json:"ts"`
}

// Ack confirms that a send is durable.
type Ack struct {
	Type string `json:"type"`
	Room string `json:"room"`
	ID   string `json:"id"`
	Seq  uint64 `json:"seq"`
}

// Presence lists who is online in a room, sorted and unique.
type Presence struct {
	Type   string   `json:"type"`
	Room   string   `json:"room"`
	Online []string `json:"online"`
}

// Error reports a problem with a client frame. Ref is the client id of the frame, if it had one.
type Error struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Ref     string `json:"ref,omitempty"`
}
