package proto

import "time"

// User is the public view of an account.
type User struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Admin bool   `json:"admin"`
}

// UserBody is the body of GET /api/me.
type UserBody struct {
	User User `json:"user"`
}

// Credentials is the body of POST /api/auth/register and /api/auth/login.
type Credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// TokenBody is the answer to register, login and refresh.
type TokenBody struct {
	User        User      `json:"user"`
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	ExpiresIn   int64     `json:"expires_in"` // seconds from the moment the body was written
	ExpiresAt   time.Time `json:"expires_at"`
}

// RoomKind says who may see and join a room (§7).
type RoomKind string

// Room kinds. A room stored before kinds existed is public.
const (
	RoomPublic  RoomKind = "public"  // listed to everyone; any user may read and join it
	RoomPrivate RoomKind = "private" // exists only for its members; a member adds others
	RoomDM      RoomKind = "dm"      // two users for ever; nobody joins or leaves
)

// Room is a chat room as one user sees it. Members (sorted names) is set only for private and
// dm rooms; LastTS is the time of the newest message (CreatedAt while empty); ReadSeq, Unread and
// Mentions are the user's (0 when not a member), Unread and Mentions stop at UnreadMax.
type Room struct {
	Name      string    `json:"name"`
	Kind      RoomKind  `json:"kind"`
	CreatedAt time.Time `json:"created_at"`
	LastSeq   uint64    `json:"last_seq"`
	LastTS    time.Time `json:"last_ts"`
	Member    bool      `json:"member"`
	Members   []string  `json:"members,omitempty"`
	ReadSeq   uint64    `json:"read_seq"`
	Unread    int       `json:"unread"`
	Mentions  int       `json:"mentions"`
}

// UnreadMax is where unread and mention counts stop (clients show "999+").
const UnreadMax = 1000

// RoomList is the body of GET /api/rooms.
type RoomList struct {
	Rooms []Room `json:"rooms"`
}

// RoomBody is the answer to POST /api/rooms.
type RoomBody struct {
	Room Room `json:"room"`
}

// CreateRoom is the body of POST /api/rooms. An empty Kind means public.
type CreateRoom struct {
	Name string   `json:"name"`
	Kind RoomKind `json:"kind,omitempty"`
}

// UserRef names a user: the body of POST /api/rooms/{room}/members and POST /api/dms.
type UserRef struct {
	User string `json:"user"`
}

// UserList is the body of GET /api/users.
type UserList struct {
	Users []UserName `json:"users"`
}

// UserName is a user as a search lists it.
type UserName struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// UserSearchMax is how many users GET /api/users lists at most.
const UserSearchMax = 20

// MessagePage is the body of GET /api/rooms/{room}/messages: messages ascending by seq.
type MessagePage struct {
	Messages []Message `json:"messages"`
	HasMore  bool      `json:"has_more"`
}

// ErrorBody is the one shape of every API error.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is a machine-readable snake_case code and a human sentence.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes of the HTTP API.
const (
	CodeBadRequest         = "bad_request"
	CodePayloadTooLarge    = "payload_too_large"
	CodeInvalidUsername    = "invalid_username"
	CodeInvalidPassword    = "invalid_password"
	CodeUsernameTaken      = "username_taken"
	CodeRegistrationClosed = "registration_closed"
	CodeInvalidCredentials = "invalid_credentials"
	CodeTooManyAttempts    = "too_many_attempts"
	CodeTooManyRequests    = "too_many_requests"
	CodeForbiddenOrigin    = "forbidden_origin"
	CodeUnauthorized       = "unauthorized"
	CodeTokenExpired       = "token_expired"
	CodeRefreshReused      = "refresh_reused"
	CodeForbidden          = "forbidden"
	CodeRoomExists         = "room_exists"
	CodeInvalidRoom        = "invalid_room"
	CodeNotFound           = "not_found"
	CodeMethodNotAllowed   = "method_not_allowed"
	CodeTooManyConnections = "too_many_connections"
	CodeUnavailable        = "unavailable"
	CodeInternal           = "internal"
)

// Cookie and subprotocol names, and the token type of TokenBody.
const (
	RefreshCookie     = "kaiwa_refresh"
	RefreshCookiePath = "/api/auth"
	// SessionHintCookie ("1", Path=/, readable by scripts) is set and cleared with the
	// refresh cookie. It holds no secret: it only tells the web app that a refresh cookie may
	// exist, so that a signed-out load does not ask for a refresh it knows will fail.
	SessionHintCookie = "kaiwa_session"
	Subprotocol       = "kaiwa.v1"
	BearerProtocol    = "kaiwa.bearer." // followed by the access token
	TokenType         = "Bearer"
)
