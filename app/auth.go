package app

import (
	"context"
	"errors"
	"time"

	goapp "github.com/maxence-charriere/go-app/v10/pkg/app"

	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// stateAuth names the go-app state that holds the current [auth]. It is never persisted: the
// access token lives in memory only, and the refresh cookie (HttpOnly) is the browser's business.
const stateAuth = "kaiwa.auth"

// requestTimeout bounds every API call the app makes.
const requestTimeout = 15 * time.Second

// authStatus says what the app knows about the session.
type authStatus int

const (
	authUnknown   authStatus = iota // nothing asked yet: the page has just loaded
	authChecking                    // the silent refresh is in flight
	authSignedIn                    // Token and User are set
	authSignedOut                   // the server said there is no session
	authOffline                     // the server could not be reached to find out
)

// auth is the session as the UI sees it. The state stateAuth holds the current value; each page
// keeps a copy that its observer updates on the UI goroutine.
type auth struct {
	Status authStatus
	User   proto.User
	Token  string // access token
}

// signedIn is the session that a token body starts.
func signedIn(tb proto.TokenBody) auth {
	return auth{Status: authSignedIn, User: tb.User, Token: tb.AccessToken}
}

// settled reports whether the app knows whether someone is signed in, so that a page may show
// either the signed-in view or a sign-in form. Until then it shows a neutral loading view: a
// signed-in person who reloads never sees the login form flash.
func (a auth) settled() bool {
	return a.Status == authSignedIn || a.Status == authSignedOut
}

// newAPI returns a client for the server that served the page. In the browser, fetch keeps and
// sends the same-origin refresh cookie.
func newAPI() *client.API {
	u := goapp.Window().URL()
	return client.NewAPI(u.Scheme+"://"+u.Host, nil)
}

// observeAuth makes *a follow the session and calls onChange (when not nil) after each change.
// On the first page of a load it starts the silent refresh that finds out whether someone is
// signed in. It must be called from OnMount.
func observeAuth(ctx goapp.Context, a *auth, onChange func()) {
	obs := ctx.ObserveState(stateAuth, a)
	if onChange != nil {
		obs.OnChange(onChange)
	}
	if a.Status == authUnknown {
		checkSession(ctx)
	}
}

// checkSession trades the refresh cookie for a session, publishing authChecking at once and the
// outcome when the server answers.
func checkSession(ctx goapp.Context) {
	ctx.SetState(stateAuth, auth{Status: authChecking})
	api := newAPI()
	ctx.Async(func() {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		tb, err := refresh(rctx, api)
		var apiErr *client.APIError
		switch {
		case err == nil:
			ctx.SetState(stateAuth, signedIn(tb))
		case errors.As(err, &apiErr):
			ctx.SetState(stateAuth, auth{Status: authSignedOut})
		default:
			ctx.SetState(stateAuth, auth{Status: authOffline})
		}
	})
}

// withToken runs call with the session's access token. When the server answers that the token
// is expired or unknown, it refreshes once, publishes the new session and calls again; when the
// refresh is refused, it publishes that nobody is signed in. It blocks: run it in ctx.Async.
func withToken(ctx goapp.Context, api *client.API, a auth, call func(ctx context.Context, token string) error) error {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	err := call(rctx, a.Token)
	if !client.IsCode(err, proto.CodeTokenExpired) && !client.IsCode(err, proto.CodeUnauthorized) {
		return err
	}
	tb, rerr := refresh(rctx, api)
	var apiErr *client.APIError
	if errors.As(rerr, &apiErr) {
		ctx.SetState(stateAuth, auth{Status: authSignedOut})
		return rerr
	}
	if rerr != nil {
		return rerr
	}
	ctx.SetState(stateAuth, signedIn(tb))
	return call(rctx, tb.AccessToken)
}
