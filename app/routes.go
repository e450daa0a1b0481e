// Package app is Kaiwa's browser client: go-app components and the routes that map paths to
// them. The same package compiles natively, where the server uses it to prerender pages, and to
// WebAssembly, where wasm/main.go runs it in the browser.
//
// A tab runs one client session for all its pages, held by a Tab (tab.go) that wasm/main.go
// makes and Routes hands to every page. The session alone holds the access token, in memory
// only, and makes every API call that needs it. Who is signed in is one go-app state (see
// auth.go) that pages observe; network calls run in ctx.Async and session events arrive
// through subscriptions, and both hand results back through ctx.Dispatch, so component fields
// change only on the UI goroutine.
package app

import (
	"regexp"

	goapp "github.com/maxence-charriere/go-app/v10/pkg/app"
)

// Paths of the app's pages.
const (
	PathHome     = "/"
	PathLogin    = "/login"
	PathRegister = "/register"
	// PathRoomPrefix followed by a room name is a room's page, such as /rooms/general.
	PathRoomPrefix = "/rooms/"
)

// roomPattern matches a room's page; room names are 1–64 of a-z 0-9 - (SPEC §3).
const roomPattern = `^/rooms/[a-z0-9-]{1,64}$`

var roomPath = regexp.MustCompile(roomPattern)

// IsPage reports whether path is one of the app's pages. Every other path shows the app's
// not-found view, which the server answers with 404.
func IsPage(path string) bool {
	switch path {
	case PathHome, PathLogin, PathRegister:
		return true
	}
	return roomPath.MatchString(path)
}

// Routes registers Kaiwa's pages with go-app, each page reaching tab. The browser entry point
// calls it with the tab's one Tab; the server, which only prerenders neutral pages, with nil.
// Registering again replaces the same routes.
func Routes(tab *Tab) {
	goapp.Route(PathHome, func() goapp.Composer { return &homePage{tab: tab} })
	goapp.Route(PathLogin, func() goapp.Composer { return &authPage{tab: tab} })
	goapp.Route(PathRegister, func() goapp.Composer { return &authPage{tab: tab, Register: true} })
	goapp.RouteWithRegexp(roomPattern, func() goapp.Composer { return &roomPage{tab: tab} })
	// Last: go-app tries patterns in order, and this one matches any path.
	goapp.RouteWithRegexp(`^/`, func() goapp.Composer { return &notFoundPage{tab: tab} })
}
