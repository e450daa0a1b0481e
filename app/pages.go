package app

import (
	"strings"

	goapp "github.com/maxence-charriere/go-app/v10/pkg/app"
)

// gate picks what a page shows for the session: a neutral loading view until the app knows who
// is signed in, signedOut or signedIn once it does.
func gate(tab *Tab, a auth, signedOut, signedIn func() goapp.UI) goapp.UI {
	switch a.Status {
	case authSignedIn:
		return signedIn()
	case authSignedOut:
		return signedOut()
	case authOffline:
		return offlineView(tab)
	default:
		return loadingView()
	}
}

// homePage is "/": the room list when signed in, the sign-in form when not.
type homePage struct {
	goapp.Compo
	tab  *Tab
	auth auth
}

func (p *homePage) OnNav(ctx goapp.Context) {
	p.tab.setTitle(ctx, "Kaiwa")
}

func (p *homePage) OnMount(ctx goapp.Context) {
	observeAuth(ctx, p.tab, &p.auth, func() { p.settled(ctx) })
	p.settled(ctx)
}

// settled lets the room list's snapshot go once nobody is signed in or the server cannot be
// reached; when someone is, the landing does once it shows the rooms.
func (p *homePage) settled(ctx goapp.Context) {
	if p.auth.Status == authSignedOut || p.auth.Status == authOffline {
		p.tab.contentShownAfterRender(ctx)
	}
}

func (p *homePage) Render() goapp.UI {
	return frame(p.auth, gate(p.tab, p.auth,
		func() goapp.UI { return &authForm{Tab: p.tab} },
		func() goapp.UI { return &landing{Tab: p.tab, Auth: p.auth} },
	))
}

// authPage is "/login", or "/register" with Register. Once someone is signed in it moves on
// to "/".
type authPage struct {
	goapp.Compo
	Register bool
	tab      *Tab
	auth     auth
}

func (p *authPage) OnNav(ctx goapp.Context) {
	title := "Sign in · Kaiwa"
	if p.Register {
		title = "Create an account · Kaiwa"
	}
	p.tab.setTitle(ctx, title)
}

func (p *authPage) OnMount(ctx goapp.Context) {
	observeAuth(ctx, p.tab, &p.auth, func() { leaveWhenSignedIn(ctx, p.auth) })
	leaveWhenSignedIn(ctx, p.auth)
	p.tab.contentShownAfterRender(ctx)
}

func (p *authPage) Render() goapp.UI {
	return frame(p.auth, gate(p.tab, p.auth,
		func() goapp.UI { return &authForm{Tab: p.tab, Register: p.Register} },
		loadingView, // on the way to "/"
	))
}

// leaveWhenSignedIn sends a signed-in person from a sign-in or sign-up page to the room list.
func leaveWhenSignedIn(ctx goapp.Context, a auth) {
	if a.Status == authSignedIn {
		ctx.Navigate(PathHome)
	}
}

// roomPage is "/rooms/{name}": the room's conversation, or the sign-in form once the server
// has said that nobody is signed in. It does not wait for the session check: while the tab's
// session refreshes (or cannot reach the server) the view shows the room's saved messages.
type roomPage struct {
	goapp.Compo
	tab  *Tab
	auth auth
	room string
}

func (p *roomPage) OnNav(ctx goapp.Context) {
	p.room = strings.TrimPrefix(ctx.Page().URL().Path, PathRoomPrefix)
	p.tab.setTitle(ctx, "#"+p.room+" · Kaiwa")
}

func (p *roomPage) OnMount(ctx goapp.Context) {
	p.room = strings.TrimPrefix(ctx.Page().URL().Path, PathRoomPrefix)
	observeAuth(ctx, p.tab, &p.auth, nil)
	p.tab.contentShownAfterRender(ctx)
}

func (p *roomPage) Render() goapp.UI {
	switch {
	case p.auth.Status == authSignedOut:
		return frame(p.auth, &authForm{Tab: p.tab})
	case p.room == "", p.tab.Session() == nil:
		// Also what the server prerenders: the room needs the tab's session, which runs in
		// the browser only.
		return frame(p.auth, loadingView())
	}
	return frame(p.auth, &roomView{Tab: p.tab, Room: p.room})
}

// notFoundPage is any path that is none of the app's pages, and a room that does not exist
// leads to the same view: inside the app, with a way back to the rooms.
type notFoundPage struct {
	goapp.Compo
	tab  *Tab
	auth auth
}

func (p *notFoundPage) OnNav(ctx goapp.Context) {
	p.tab.setTitle(ctx, "Not found · Kaiwa")
}

func (p *notFoundPage) OnMount(ctx goapp.Context) {
	observeAuth(ctx, p.tab, &p.auth, nil)
	ctx.Defer(func(goapp.Context) { focusID("not-found-title") })
	p.tab.contentShownAfterRender(ctx)
}

func (p *notFoundPage) Render() goapp.UI {
	return frame(p.auth, notFoundView("There is no page at this address."))
}

// notFoundView says that what was asked for does not exist, and links back to the rooms.
func notFoundView(what string) goapp.UI {
	return goapp.Div().Class("card").DataSet("view", "not-found").Body(
		goapp.H1().ID("not-found-title").TabIndex(-1).Text("Not found"),
		goapp.P().Text(what),
		goapp.P().Body(goapp.A().Href(PathHome).Text("Back to the rooms")),
	)
}
