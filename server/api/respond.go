package api

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"kaiwa/server/auth"
	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

// apiError is an error with its HTTP status and API code.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errorf(status int, code, message string) *apiError {
	return &apiError{status: status, code: code, message: message}
}

var (
	errBadJSON      = errorf(http.StatusBadRequest, proto.CodeBadRequest, "The request body is not valid JSON of the expected shape.")
	errTooLarge     = errorf(http.StatusRequestEntityTooLarge, proto.CodePayloadTooLarge, "The request body is larger than 64 KiB.")
	errUnauthorized = errorf(http.StatusUnauthorized, proto.CodeUnauthorized, "Sign in to continue.")
	errNotFound     = errorf(http.StatusNotFound, proto.CodeNotFound, "There is nothing here.")
)

// writeJSON writes v as the JSON body with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do about it
}

// writeError is the one place an API error body is written. It maps the sentinel errors of
// auth and store to their status and code; anything unknown is logged and answered 500.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *apiError
	switch {
	case errors.As(err, &e):
	case errors.Is(err, auth.ErrInvalidCredentials):
		e = errorf(http.StatusUnauthorized, proto.CodeInvalidCredentials, "The username or password is wrong.")
	case errors.Is(err, auth.ErrTokenExpired):
		e = errorf(http.StatusUnauthorized, proto.CodeTokenExpired, "The access token has expired: refresh it.")
	case errors.Is(err, auth.ErrRefreshReused):
		e = errorf(http.StatusUnauthorized, proto.CodeRefreshReused, "This refresh token was already used; the session has been signed out.")
	case errors.Is(err, auth.ErrUnauthorized):
		e = errUnauthorized
	case errors.Is(err, auth.ErrInvalidUsername):
		e = errorf(http.StatusBadRequest, proto.CodeInvalidUsername, "A username has 3 to 32 of a-z, 0-9, _ . and -.")
	case errors.Is(err, auth.ErrInvalidPassword):
		e = errorf(http.StatusBadRequest, proto.CodeInvalidPassword, "A password has 8 to 1024 bytes.")
	case errors.Is(err, auth.ErrUsernameTaken):
		e = errorf(http.StatusConflict, proto.CodeUsernameTaken, "That username is taken.")
	case errors.Is(err, store.ErrRoomExists):
		e = errorf(http.StatusConflict, proto.CodeRoomExists, "A room with that name exists.")
	case errors.Is(err, store.ErrNotFound):
		e = errNotFound
	case errors.Is(err, store.ErrForbidden):
		e = errorf(http.StatusForbidden, proto.CodeForbidden, "That membership change is not allowed.")
	case errors.Is(err, store.ErrUnavailable):
		w.Header().Set("Retry-After", "2")
		e = errorf(http.StatusServiceUnavailable, proto.CodeUnavailable, "Storage is unavailable for a moment; retry shortly.")
	default:
		a.log.Error("api_error", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
		e = errorf(http.StatusInternalServerError, proto.CodeInternal, "Something went wrong on the server.")
	}
	if e.status == http.StatusUnauthorized && r.Header.Get("Authorization") != "" {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	writeJSON(w, e.status, proto.ErrorBody{Error: proto.ErrorDetail{Code: e.code, Message: e.message}})
}

// tooManyAttempts is the 429 answer, with Retry-After in whole seconds.
func tooManyAttempts(wait time.Duration) *apiError {
	return errorf(http.StatusTooManyRequests, proto.CodeTooManyAttempts,
		"Too many failed attempts. Try again in "+strconv.Itoa(retrySeconds(wait))+" s.")
}

func retrySeconds(wait time.Duration) int {
	return max(1, int((wait+time.Second-1)/time.Second))
}

// decode reads a JSON request body of at most 64 KiB into v: one JSON value and nothing after.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if r.ContentLength > proto.MaxBodyBytes {
		return errTooLarge
	}
	r.Body = http.MaxBytesReader(w, r.Body, proto.MaxBodyBytes)
	err := decodeJSON(r.Body, v)
	// Drain to the limit either way: a body too large is that first, even when its start is
	// already not JSON (a chunked body has no Content-Length to tell).
	_, rerr := io.Copy(io.Discard, r.Body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) || errors.As(rerr, &tooBig) {
		return errTooLarge
	}
	if err == nil {
		err = rerr
	}
	if err != nil {
		return errBadJSON
	}
	return nil
}

// decodeJSON decodes exactly one JSON value from rd into v.
func decodeJSON(rd io.Reader, v any) error {
	dec := json.NewDecoder(rd)
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errBadJSON
	}
	return nil
}
