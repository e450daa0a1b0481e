package app

import (
	"errors"
	"fmt"

	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// errorText turns an error from the API client into a sentence for the person using the app.
// Codes the app knows get Kaiwa's own wording; other API errors keep the server's message; an
// error without an API body means the server could not be reached.
func errorText(err error) string {
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) {
		return "Cannot reach the server. Check your connection and try again."
	}
	switch apiErr.Code {
	case proto.CodeInvalidCredentials:
		return "Wrong username or password."
	case proto.CodeUsernameTaken:
		return "That username is taken. Pick another one."
	case proto.CodeInvalidUsername:
		return fmt.Sprintf("Usernames have %d to %d characters: lowercase letters, digits, _ . and -.", proto.UsernameMin, proto.UsernameMax)
	case proto.CodeInvalidPassword:
		return fmt.Sprintf("Passwords need at least %d characters.", proto.PasswordMin)
	case proto.CodeRegistrationClosed:
		return "Registration is closed on this server. Ask its administrator for an account."
	case proto.CodeTooManyAttempts:
		if apiErr.RetryAfter > 0 {
			return fmt.Sprintf("Too many attempts. Try again in %d seconds.", apiErr.RetryAfter)
		}
		return "Too many attempts. Try again later."
	case proto.CodeForbiddenOrigin:
		return "This server does not accept requests from this address."
	case proto.CodeRoomExists:
		return "A room with that name already exists."
	case proto.CodeInvalidRoom:
		return fmt.Sprintf("Room names have 1 to %d characters: lowercase letters, digits and -.", proto.RoomNameMax)
	case proto.CodeTextTooLong:
		return fmt.Sprintf("Messages have at most %d characters.", proto.TextMax)
	case proto.CodeEmptyText:
		return "A message needs some text."
	case proto.CodeNotFound:
		return "Not found: it may have been removed."
	case proto.CodeUnauthorized, proto.CodeTokenExpired, proto.CodeRefreshReused:
		return "Your session has ended. Sign in again."
	}
	if apiErr.Message != "" {
		return apiErr.Message
	}
	return "Something went wrong. Try again."
}

// errorCodeText is errorText for an error frame of the WebSocket: its code and the server's
// sentence.
func errorCodeText(code, message string) string {
	return errorText(&client.APIError{Code: code, Message: message})
}
