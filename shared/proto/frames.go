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
	TypeRead     = "read"   // §7: a read marker, both ways
	TypeRoom     = "room"   // §7: a room object changed for the user
	TypeEdit     = "edit"   // §7: client asks to edit a message
	TypeDelete   = "delete" // §7: client asks to delete a message
)

// Message kinds (§7): a plain message has none; edits and deletions name their target.
const (
	KindEdit   = "edit"
	KindDelete = "delete"
)

// TypingEvery is the least time between two typing frames relayed for one user and room.
const TypingEvery = 2 * time.Second

// Error codes carried by error frames.
const (
	CodeBadFrame      = "bad_frame"
	CodeUnknownType   = "unknown_type"
	CodeNotJoined     = "not_joined"
	CodeEmptyText     = "empty_text"
	CodeTextTooLong   = "text_too_long"
	CodeRateLimited   = "rate_limited"
	CodeNotAllowed    = "not_allowed"    // §7: editing or deleting what the user may not
	CodeInvalidTarget = "invalid_target" // §7: no such seq, an edit or deletion, or deleted
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
	Target    uint64    `json:"target"`
	Kind      string    `json:"kind"`
	Mentions  []string  `json:"mentions"`
	EditedAt  time.Time `json:"edited_at"`
	Deleted   bool      `json:"deleted"`
	// RoomInfo is the room object of a room frame, whose "room" is an object; Room is then
	// its name.
	RoomInfo *Room `json:"-"`
}

// UnmarshalJSON decodes any frame; "room" may be a name or, in a room frame, a room object.
func (f *Frame) UnmarshalJSON(b []byte) error {
	type plain Frame // no methods: no recursion
	var raw struct {
		plain
		Room json.RawMessage `json:"room"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*f = Frame(raw.plain)
	f.Room, f.RoomInfo = "", nil
	switch {
	case len(raw.Room) > 0 && raw.Room[0] == '{':
		var r Room
		if err := json.Unmarshal(raw.Room, &r); err != nil {
			return err
		}
		f.Room, f.RoomInfo = r.Name, &r
	case len(raw.Room) > 0 && string(raw.Room) != "null":
		return json.Unmarshal(raw.Room, &f.Room)
	}
	return nil
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

// Message is one chat message as the wire shows it. Over the WebSocket its Type is "message"; in
// the HTTP history it has no type. Kind is "" for a plain message, KindEdit or KindDelete for an
// edit or deletion of the message at Target (Text is then the new text, "" for a deletion).
// Mentions are the names mentioned, sorted and unique. EditedAt and Deleted appear only in the
// history, where edits and deletions are applied to their targets.
type Message struct {
	Type     string     `json:"type,omitempty"`
	Room     string     `json:"room"`
	Seq      uint64     `json:"seq"`
	ID       string     `json:"id"`
	From     string     `json:"from"`
	Text     string     `json:"text"`
	TS       time.Time  `json:"ts"`
	Kind     string     `json:"kind,omitempty"`
	Target   uint64     `json:"target,omitempty"`
	Mentions []string   `json:"mentions,omitempty"`
	EditedAt *time.Time `json:"edited_at,omitempty"`
	Deleted  bool       `json:"deleted,omitempty"`
}

// Edit replaces the text of the sender's message at Target (client to server, §7).
type Edit struct {
	Type   string `json:"type"`
	Room   string `json:"room"`
	ID     string `json:"id"`
	Target uint64 `json:"target"`
	Text   string `json:"text"`
}

// Delete removes the message at Target (client to server, §7).
type Delete struct {
	Type   string `json:"type"`
	Room   string `json:"room"`
	ID     string `json:"id"`
	Target uint64 `json:"target"`
}

// Read moves the user's read marker of a room to Seq (client to server), or tells every socket
// of the user where it now is (server to client).
type Read struct {
	Type string `json:"type"`
	Room string `json:"room"`
	Seq  uint64 `json:"seq"`
}

// RoomFrame tells a socket that a room changed for its user: became or stopped being a member,
// or the member list changed. Room is the room object as that user sees it.
type RoomFrame struct {
	Type string `json:"type"`
	Room Room   `json:"room"`
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
