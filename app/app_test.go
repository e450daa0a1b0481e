package app

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	goapp "github.com/maxence-charriere/go-app/v10/pkg/app"

	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

func TestErrorText(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"taken", &client.APIError{Status: 409, Code: proto.CodeUsernameTaken}, "That username is taken"},
		{"credentials", &client.APIError{Status: 401, Code: proto.CodeInvalidCredentials}, "Wrong username or password"},
		{"throttled with delay", &client.APIError{Status: 429, Code: proto.CodeTooManyAttempts, RetryAfter: 30}, "Try again in 30 seconds"},
		{"throttled", &client.APIError{Status: 429, Code: proto.CodeTooManyAttempts}, "Too many attempts"},
		{"bad username", &client.APIError{Status: 400, Code: proto.CodeInvalidUsername}, "3 to 32 characters"},
		{"short password", &client.APIError{Status: 400, Code: proto.CodeInvalidPassword}, "at least 8 characters"},
		{"closed", &client.APIError{Status: 403, Code: proto.CodeRegistrationClosed}, "Registration is closed"},
		{"room exists", &client.APIError{Status: 409, Code: proto.CodeRoomExists}, "already exists"},
		{"unknown code keeps the server's sentence", &client.APIError{Status: 500, Code: "internal", Message: "The server failed."}, "The server failed."},
		{"unknown code, no sentence", &client.APIError{Status: 502, Code: "http_502"}, "Something went wrong"},
		{"wrapped", errors.Join(errors.New("context"), &client.APIError{Code: proto.CodeInvalidCredentials}), "Wrong username or password"},
		{"network", errors.New("dial tcp: connection refused"), "Cannot reach the server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errorText(tt.err); !strings.Contains(got, tt.want) {
				t.Errorf("errorText = %q, want it to contain %q", got, tt.want)
			}
		})
	}
}

func TestRoomLabel(t *testing.T) {
	tests := []struct {
		name string
		room proto.Room
		want string
	}{
		{"public", proto.Room{Name: "general", Kind: proto.RoomPublic}, "#general"},
		{"private", proto.Room{Name: "team", Kind: proto.RoomPrivate, Members: []string{"alice", "bob"}}, "#team"},
		{"dm by the other person", proto.Room{Name: "dm-0123456789abcdef", Kind: proto.RoomDM, Members: []string{"alice", "bob"}}, "bob"},
		{"dm listed the other way", proto.Room{Name: "dm-0123456789abcdef", Kind: proto.RoomDM, Members: []string{"aaron", "alice"}}, "aaron"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := roomLabel(tt.room, "alice"); got != tt.want {
				t.Errorf("roomLabel = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCountText(t *testing.T) {
	for n, want := range map[int]string{1: "1", 999: "999", proto.UnreadMax: "999+", 5000: "999+"} {
		if got := countText(n); got != want {
			t.Errorf("countText(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestGate checks what each page shows for each session status: never a sign-in form before the
// session check has answered that nobody is signed in.
func TestGate(t *testing.T) {
	signedOut := func() goapp.UI { return &authForm{} }
	signedIn := func() goapp.UI { return goapp.P().DataSet("view", "home") }
	tests := []struct {
		status   authStatus
		view     string
		password bool
	}{
		{authUnknown, `data-view="loading"`, false},
		{authChecking, `data-view="loading"`, false},
		{authOffline, `data-view="offline"`, false},
		{authSignedOut, `data-view="login"`, true},
		{authSignedIn, `data-view="home"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.view, func(t *testing.T) {
			html := goapp.HTMLString(gate(nil, auth{Status: tt.status}, signedOut, signedIn))
			if !strings.Contains(html, tt.view) {
				t.Errorf("status %d shows %s, want %s", tt.status, html, tt.view)
			}
			if got := strings.Contains(html, `name="password"`); got != tt.password {
				t.Errorf("status %d: password field shown = %v, want %v", tt.status, got, tt.password)
			}
		})
	}
}

func TestAuthFormMarkup(t *testing.T) {
	tests := []struct {
		name         string
		form         *authForm
		view         string
		autocomplete string
	}{
		{"login", &authForm{}, "login", "current-password"},
		{"register", &authForm{Register: true}, "register", "new-password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			html := goapp.HTMLString(tt.form)
			for _, want := range []string{
				`<form`, `data-view="` + tt.view + `"`,
				`<label for="` + tt.view + `-username"`, `id="` + tt.view + `-username"`, `name="username"`,
				`<label for="` + tt.view + `-password"`, `id="` + tt.view + `-password"`, `name="password"`, `type="password"`,
				`autocomplete="` + tt.autocomplete + `"`,
				`type="submit"`,
			} {
				if !strings.Contains(html, want) {
					t.Errorf("form lacks %s:\n%s", want, html)
				}
			}
		})
	}
}

// TestUserTextIsText renders user text natively, as the server would. go-app's native encoder
// does not escape attribute values (the browser sets them through the DOM, which is safe), so
// the test looks for markup outside attributes; the server prerenders no user data anyway.
func TestUserTextIsText(t *testing.T) {
	const evil = `<img src=x onerror="alert(1)">`
	markup := regexp.MustCompile(`(^|[^"])<img src=x`)
	tests := []struct {
		name string
		ui   goapp.UI
	}{
		{"user name", &landing{Auth: auth{Status: authSignedIn, User: proto.User{Name: evil}}}},
		{"room name", &landing{rooms: []proto.Room{{Name: evil, Member: true}}, loaded: true}},
		{"public room name", &landing{rooms: []proto.Room{{Name: evil, Kind: proto.RoomPublic}}, loaded: true}},
		{"dm partner", &landing{rooms: []proto.Room{{Name: "dm-x", Kind: proto.RoomDM, Member: true, Members: []string{evil, "zed"}}}, loaded: true}},
		{"error sentence", &authForm{err: evil}},
		{"top bar", frame(auth{Status: authSignedIn, User: proto.User{Name: evil}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			html := goapp.HTMLString(tt.ui)
			if markup.MatchString(html) {
				t.Errorf("user text became markup:\n%s", html)
			}
			if !strings.Contains(html, "&lt;img") {
				t.Errorf("user text is missing:\n%s", html)
			}
		})
	}
}
