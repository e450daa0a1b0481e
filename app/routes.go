// Package app is Kaiwa's browser client: go-app components and the routes that map paths to
// them. The same package compiles natively, where the server uses it to prerender pages, and to
// WebAssembly, where wasm/main.go runs it in the browser.
//
// The signed-in session lives in one go-app state (see auth.go), held in memory only: the access
// token is never written to local storage. Components observe it; network calls run in
// ctx.Async and hand results back through the state or ctx.Dispatch, so component fields change
// only on the UI goroutine.
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

// Routes registers Kaiwa's pages with go-app. Both the browser entry point and the server call
// it, before running the app or serving pages; registering again replaces the same routes.
func Routes() {
	goapp.Route(PathHome, goapp.NewZeroComponentFactory(&homePage{}))
	goapp.Route(PathLogin, func() goapp.Composer { return &authPage{} })
	goapp.Route(PathRegister, func() goapp.Composer { return &authPage{Register: true} })
	goapp.RouteWithRegexp(roomPattern, goapp.NewZeroComponentFactory(&roomPage{}))
	// Last: go-app tries patterns in order, and this one matches any path.
	goapp.RouteWithRegexp(`^/`, goapp.NewZeroComponentFactory(&notFoundPage{}))
}
