package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"kaiwa/shared/proto"
)

// APIError is an error answered by the server in the API's error body.
type APIError struct {
	Status  int    // HTTP status
	Code    string // snake_case code, such as "invalid_credentials"
	Message string // human sentence from the server
	// RetryAfter is the server's Retry-After in seconds, or 0.
	RetryAfter int
}

func (e *APIError) Error() string {
	return fmt.Sprintf("kaiwa: %s (%d): %s", e.Code, e.Status, e.Message)
}

// IsCode reports whether err is an *APIError with the given code.
func IsCode(err error, code string) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.Code == code
}

// API calls Kaiwa's HTTP API. The refresh token travels in a cookie: in the browser the browser
// keeps it; natively the HTTP client needs a cookie jar (see [NewAPI]).
//
// API holds no token of its own: calls that need one take it as an argument. It is safe for
// concurrent use.
type API struct {
	base      string
	transport transport
}

// Base returns the server's base URL.
func (a *API) Base() string { return a.base }

// Register creates an account and signs in. A username or password the server would refuse
// fails without asking it, with the server's error (invalid_username, invalid_password).
func (a *API) Register(ctx context.Context, username, password string) (proto.TokenBody, error) {
	var tb proto.TokenBody
	if _, ok := proto.NormalizeUsername(username); !ok {
		return tb, &APIError{Status: 400, Code: proto.CodeInvalidUsername, Message: fmt.Sprintf("A username has %d to %d of a-z, 0-9, _ . and -.", proto.UsernameMin, proto.UsernameMax)}
	}
	if !proto.ValidPassword(password) {
		return tb, &APIError{Status: 400, Code: proto.CodeInvalidPassword, Message: fmt.Sprintf("A password has %d to %d bytes.", proto.PasswordMin, proto.PasswordMax)}
	}
	err := a.do(ctx, "POST", "/api/auth/register", "", proto.Credentials{Username: username, Password: password}, &tb)
	return tb, err
}

// Login signs in.
func (a *API) Login(ctx context.Context, username, password string) (proto.TokenBody, error) {
	var tb proto.TokenBody
	err := a.do(ctx, "POST", "/api/auth/login", "", proto.Credentials{Username: username, Password: password}, &tb)
	return tb, err
}

// Refresh trades the refresh cookie for a new access token and a rotated cookie.
func (a *API) Refresh(ctx context.Context) (proto.TokenBody, error) {
	var tb proto.TokenBody
	err := a.do(ctx, "POST", "/api/auth/refresh", "", nil, &tb)
	return tb, err
}

// Logout revokes the session of the refresh cookie.
func (a *API) Logout(ctx context.Context) error {
	return a.do(ctx, "POST", "/api/auth/logout", "", nil, nil)
}

// Me returns the signed-in user.
func (a *API) Me(ctx context.Context, token string) (proto.User, error) {
	var ub proto.UserBody
	err := a.do(ctx, "GET", "/api/me", token, nil, &ub)
	return ub.User, err
}

// Rooms lists the rooms.
func (a *API) Rooms(ctx context.Context, token string) ([]proto.Room, error) {
	var rl proto.RoomList
	err := a.do(ctx, "GET", "/api/rooms", token, nil, &rl)
	return rl.Rooms, err
}

// CreateRoom creates a room. A name that is not a valid room name fails without asking the
// server, with the server's error (invalid_room).
func (a *API) CreateRoom(ctx context.Context, token, name string) (proto.Room, error) {
	var rb proto.RoomBody
	if err := checkRoomName(name); err != nil {
		return rb.Room, err
	}
	err := a.do(ctx, "POST", "/api/rooms", token, proto.CreateRoom{Name: name}, &rb)
	return rb.Room, err
}

// PageQuery selects a page of history. With neither cursor set, the newest messages.
type PageQuery struct {
	Before uint64  // messages just below this seq, when not 0
	After  *uint64 // messages just above this seq, when not nil
	// Limit is the most messages in the page: 0 means proto.PageDefault (50), and more than
	// proto.PageMax (200) means PageMax.
	Limit int
}

// Messages reads a page of a room's history.
func (a *API) Messages(ctx context.Context, token, room string, q PageQuery) (proto.MessagePage, error) {
	path, err := messagesPath(room, q)
	if err != nil {
		return proto.MessagePage{}, err
	}
	var page proto.MessagePage
	err = a.do(ctx, "GET", path, token, nil, &page)
	return page, err
}

func checkRoomName(name string) error {
	if !proto.ValidRoomName(name) {
		return &APIError{Status: 400, Code: proto.CodeInvalidRoom, Message: fmt.Sprintf("A room name has 1 to %d of a-z, 0-9 and -.", proto.RoomNameMax)}
	}
	return nil
}

// messagesPath is the history path of a page query, or the error the server would answer.
func messagesPath(room string, q PageQuery) (string, error) {
	if err := checkRoomName(room); err != nil {
		return "", err
	}
	v := url.Values{}
	if q.Before != 0 {
		v.Set("before", strconv.FormatUint(q.Before, 10))
	}
	if q.After != nil {
		v.Set("after", strconv.FormatUint(*q.After, 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(min(q.Limit, proto.PageMax)))
	}
	path := "/api/rooms/" + url.PathEscape(room) + "/messages"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	return path, nil
}

func (a *API) do(ctx context.Context, method, path, token string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("kaiwa: encode request: %w", err)
		}
	}
	resp, err := a.transport.roundTrip(ctx, request{method: method, url: a.base + path, token: token, body: body})
	if err != nil {
		return fmt.Errorf("kaiwa: %s %s: %w", method, path, err)
	}
	defer resp.body.Close()
	if resp.status >= 300 {
		return readAPIError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.body).Decode(out); err != nil {
		return fmt.Errorf("kaiwa: decode %s: %w", path, err)
	}
	return nil
}

func readAPIError(resp *response) error {
	apiErr := &APIError{Status: resp.status}
	apiErr.RetryAfter, _ = strconv.Atoi(resp.retryAfter)
	var eb proto.ErrorBody
	if err := json.NewDecoder(io.LimitReader(resp.body, 1<<16)).Decode(&eb); err != nil || eb.Error.Code == "" {
		apiErr.Code = "http_" + strconv.Itoa(resp.status)
		apiErr.Message = "HTTP status " + strconv.Itoa(resp.status)
		return apiErr
	}
	apiErr.Code, apiErr.Message = eb.Error.Code, eb.Error.Message
	return apiErr
}

// Backup streams the server's database copy (admin only) to w and returns the bytes written.
func (a *API) Backup(ctx context.Context, token string, w io.Writer) (int64, error) {
	resp, err := a.transport.roundTrip(ctx, request{method: "GET", url: a.base + "/api/admin/backup", token: token})
	if err != nil {
		return 0, fmt.Errorf("kaiwa: backup: %w", err)
	}
	defer resp.body.Close()
	if resp.status != 200 {
		return 0, readAPIError(resp)
	}
	n, err := io.Copy(w, resp.body)
	if err != nil {
		return n, fmt.Errorf("kaiwa: backup: %w", err)
	}
	return n, nil
}

// transport sends API calls: net/http natively (http_nowasm.go), the browser's fetch in
// WebAssembly (http_wasm.go), which keeps net/http's client and TLS out of app.wasm.
type transport interface {
	roundTrip(ctx context.Context, r request) (*response, error)
}

// request is one API call as the platform's transport sends it: JSON body when body is not nil,
// Bearer token when token is not empty.
type request struct {
	method, url, token string
	body               []byte
}

// response is what the transport received. The caller closes body.
type response struct {
	status     int
	retryAfter string // the Retry-After header
	body       io.ReadCloser
}
