package app

import (
	"strings"

	goapp "github.com/maxence-charriere/go-app/v10/pkg/app"
)

// gate picks what a page shows for the session: a neutral loading view until the app knows who
// is signed in, signedOut or signedIn once it does.
func gate(a auth, signedOut, signedIn func() goapp.UI) goapp.UI {
	switch a.Status {
	case authSignedIn:
		return signedIn()
	case authSignedOut:
		return signedOut()
	case authOffline:
		return offlineView()
	default:
		return loadingView()
	}
}

// homePage is "/": the room list when signed in, the sign-in form when not.
type homePage struct {
	goapp.Compo
	auth auth
}

func (p *homePage) OnNav(ctx goapp.Context) {
	ctx.Page().SetTitle("Kaiwa")
}

func (p *homePage) OnMount(ctx goapp.Context) {
	observeAuth(ctx, &p.auth, nil)
}

func (p *homePage) Render() goapp.UI {
	return frame(p.auth, gate(p.auth,
		func() goapp.UI { return &authForm{} },
		func() goapp.UI { return &landing{Auth: p.auth} },
	))
}

// loginPage is "/login". Once someone is signed in it moves on to "/".
type loginPage struct {
	goapp.Compo
	auth auth
}

func (p *loginPage) OnNav(ctx goapp.Context) {
	ctx.Page().SetTitle("Sign in · Kaiwa")
}

func (p *loginPage) OnMount(ctx goapp.Context) {
	observeAuth(ctx, &p.auth, func() { leaveWhenSignedIn(ctx, p.auth) })
	leaveWhenSignedIn(ctx, p.auth)
}

func (p *loginPage) Render() goapp.UI {
	return frame(p.auth, gate(p.auth,
		func() goapp.UI { return &authForm{} },
		loadingView, // on the way to "/"
	))
}

// registerPage is "/register". Once someone is signed in it moves on to "/".
type registerPage struct {
	goapp.Compo
	auth auth
}

func (p *registerPage) OnNav(ctx goapp.Context) {
	ctx.Page().SetTitle("Create an account · Kaiwa")
}

func (p *registerPage) OnMount(ctx goapp.Context) {
	observeAuth(ctx, &p.auth, func() { leaveWhenSignedIn(ctx, p.auth) })
	leaveWhenSignedIn(ctx, p.auth)
}

func (p *registerPage) Render() goapp.UI {
	return frame(p.auth, gate(p.auth,
		func() goapp.UI { return &authForm{Register: true} },
		loadingView, // on the way to "/"
	))
}

// leaveWhenSignedIn sends a signed-in person from a sign-in or sign-up page to the room list.
func leaveWhenSignedIn(ctx goapp.Context, a auth) {
	if a.Status == authSignedIn {
		ctx.Navigate(PathHome)
	}
}

// roomPage is "/rooms/{name}". For now it names the room; the conversation view comes later.
type roomPage struct {
	goapp.Compo
	auth auth
	room string
}

func (p *roomPage) OnNav(ctx goapp.Context) {
	p.room = strings.TrimPrefix(ctx.Page().URL().Path, PathRoomPrefix)
	ctx.Page().SetTitle("#%s · Kaiwa", p.room)
}

func (p *roomPage) OnMount(ctx goapp.Context) {
	observeAuth(ctx, &p.auth, nil)
}

func (p *roomPage) Render() goapp.UI {
	return frame(p.auth, gate(p.auth,
		func() goapp.UI { return &authForm{} },
		func() goapp.UI {
			return goapp.Section().Class("card").DataSet("view", "room").DataSet("room", p.room).Body(
				goapp.H1().Text("#"+p.room),
				goapp.P().Text("The conversation view of a room is not built yet."),
				goapp.P().Body(goapp.A().Href(PathHome).Text("All rooms")),
			)
		},
	))
}
