package app

import (
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

// auth is who is signed in, as the UI sees it. The state stateAuth holds the current value (the
// Tab publishes it); each page keeps a copy that its observer updates on the UI goroutine. The
// access token is not part of it: only the session holds it.
type auth struct {
	Status authStatus
	User   proto.User
}

// signedIn is the session that a token body starts.
func signedIn(tb proto.TokenBody) auth {
	return auth{Status: authSignedIn, User: tb.User}
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

// observeAuth makes *a follow who is signed in and calls onChange (when not nil) after each
// change, and makes the page the one the tab's work runs with; on the first page of a load it
// starts the tab's session. It must be called from OnMount.
func observeAuth(ctx goapp.Context, tab *Tab, a *auth, onChange func()) {
	obs := ctx.ObserveState(stateAuth, a)
	if onChange != nil {
		obs.OnChange(onChange)
	}
	tab.attach(ctx)
	tab.start(ctx)
}
