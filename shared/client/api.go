package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

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
	base string
	http *http.Client
}

// NewAPI returns an API for the server at base, such as "http://localhost:8080". A nil hc means a
// new client with its own cookie jar.
func NewAPI(base string, hc *http.Client) *API {
	if hc == nil {
		hc = newHTTPClient()
	}
	return &API{base: strings.TrimRight(base, "/"), http: hc}
}

// Base returns the server's base URL.
func (a *API) Base() string { return a.base }

// Register creates an account and signs in.
func (a *API) Register(ctx context.Context, username, password string) (proto.TokenBody, error) {
	var tb proto.TokenBody
	err := a.do(ctx, http.MethodPost, "/api/auth/register", "", proto.Credentials{Username: username, Password: password}, &tb)
	return tb, err
}

// Login signs in.
func (a *API) Login(ctx context.Context, username, password string) (proto.TokenBody, error) {
	var tb proto.TokenBody
	err := a.do(ctx, http.MethodPost, "/api/auth/login", "", proto.Credentials{Username: username, Password: password}, &tb)
	return tb, err
}

// Refresh trades the refresh cookie for a new access token and a rotated cookie.
func (a *API) Refresh(ctx context.Context) (proto.TokenBody, error) {
	var tb proto.TokenBody
	err := a.do(ctx, http.MethodPost, "/api/auth/refresh", "", nil, &tb)
	return tb, err
}

// Logout revokes the session of the refresh cookie.
func (a *API) Logout(ctx context.Context) error {
	return a.do(ctx, http.MethodPost, "/api/auth/logout", "", nil, nil)
}

// Me returns the signed-in user.
func (a *API) Me(ctx context.Context, token string) (proto.User, error) {
	var ub proto.UserBody
	err := a.do(ctx, http.MethodGet, "/api/me", token, nil, &ub)
	return ub.User, err
}

// Rooms lists the rooms.
func (a *API) Rooms(ctx context.Context, token string) ([]proto.Room, error) {
	var rl proto.RoomList
	err := a.do(ctx, http.MethodGet, "/api/rooms", token, nil, &rl)
	return rl.Rooms, err
}

// CreateRoom creates a room.
func (a *API) CreateRoom(ctx context.Context, token, name string) (proto.Room, error) {
	var rb proto.RoomBody
	err := a.do(ctx, http.MethodPost, "/api/rooms", token, proto.CreateRoom{Name: name}, &rb)
	return rb.Room, err
}

// PageQuery selects a page of history. With neither cursor set, the newest messages.
type PageQuery struct {
	Before uint64 // messages just below this seq, when not 0
	After  *uint64
	Limit  int // 0 means the server's default
}

// Messages reads a page of a room's history.
func (a *API) Messages(ctx context.Context, token, room string, q PageQuery) (proto.MessagePage, error) {
	v := url.Values{}
	if q.Before != 0 {
		v.Set("before", strconv.FormatUint(q.Before, 10))
	}
	if q.After != nil {
		v.Set("after", strconv.FormatUint(*q.After, 10))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	path := "/api/rooms/" + url.PathEscape(room) + "/messages"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var page proto.MessagePage
	err := a.do(ctx, http.MethodGet, path, token, nil, &page)
	return page, err
}

func (a *API) do(ctx context.Context, method, path, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("kaiwa: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return fmt.Errorf("kaiwa: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("kaiwa: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return readAPIError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("kaiwa: decode %s: %w", path, err)
	}
	return nil
}

func readAPIError(resp *http.Response) error {
	apiErr := &APIError{Status: resp.StatusCode}
	apiErr.RetryAfter, _ = strconv.Atoi(resp.Header.Get("Retry-After"))
	var eb proto.ErrorBody
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&eb); err != nil || eb.Error.Code == "" {
		apiErr.Code = "http_" + strconv.Itoa(resp.StatusCode)
		apiErr.Message = http.StatusText(resp.StatusCode)
		return apiErr
	}
	apiErr.Code, apiErr.Message = eb.Error.Code, eb.Error.Message
	return apiErr
}

// Backup streams the server's database copy (admin only) to w and returns the bytes written.
func (a *API) Backup(ctx context.Context, token string, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/api/admin/backup", nil)
	if err != nil {
		return 0, fmt.Errorf("kaiwa: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("kaiwa: backup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, readAPIError(resp)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("kaiwa: backup: %w", err)
	}
	return n, nil
}
