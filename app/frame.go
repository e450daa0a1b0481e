package app

import (
	goapp "github.com/maxence-charriere/go-app/v10/pkg/app"
)

// frame wraps a page's content in the layout every page shares: the top bar, the update notice
// and the main landmark.
func frame(a auth, content ...goapp.UI) goapp.UI {
	return goapp.Div().Class("kaiwa").Body(
		goapp.A().Class("skip").Href("#main").Text("Skip to content").OnClick(skipToMain),
		goapp.Header().Class("topbar").Body(
			goapp.A().Class("brand").Href(PathHome).Body(
				// Decorative: the link's name is the text beside it.
				goapp.Img().Src("/web/icon-192.png").Alt("").Aria("hidden", "true").Width(28).Height(28),
				goapp.Span().Text("Kaiwa"),
			),
			goapp.If(a.Status == authSignedIn, func() goapp.UI {
				return goapp.Span().Class("topbar-user").Text(a.User.Name)
			}),
		),
		&updateNotice{},
		&insecureNotice{},
		goapp.Main().ID("main").TabIndex(-1).Body(content...),
	)
}

// skipToMain moves the focus to the main landmark, as following "#main" would without the
// app's router, so that the next Tab starts there.
func skipToMain(ctx goapp.Context, e goapp.Event) {
	e.PreventDefault()
	focusID("main")
}

// focusID moves the focus to the element with the id, if there is one.
func focusID(id string) {
	if el := goapp.Window().GetElementByID(id); el.Truthy() {
		el.Call("focus")
	}
}

// loadingView is shown while the app finds out whether someone is signed in.
func loadingView() goapp.UI {
	return goapp.Div().Class("card loading").DataSet("view", "loading").Aria("busy", "true").Body(
		goapp.P().Text("Loading…"),
	)
}

// offlineView is shown when the server could not be reached to check the session. Its button
// asks the tab's session to try again at once.
func offlineView(tab *Tab) goapp.UI {
	return goapp.Div().Class("card").DataSet("view", "offline").Body(
		goapp.H1().Text("Cannot reach the server"),
		goapp.P().Text("Kaiwa could not check your session. Check your connection and try again."),
		goapp.Button().Type("button").Text("Try again").OnClick(func(ctx goapp.Context, e goapp.Event) {
			if s := tab.Session(); s != nil {
				s.Online()
			}
		}),
		&savedRooms{},
	)
}

// savedRooms links to the rooms this browser keeps messages of: their pages work offline.
type savedRooms struct {
	goapp.Compo
	names []string
}

func (r *savedRooms) OnMount(ctx goapp.Context) {
	r.names = localData{ctx.LocalStorage()}.rooms()
}

func (r *savedRooms) Render() goapp.UI {
	return goapp.Div().Body(
		goapp.If(len(r.names) > 0, func() goapp.UI {
			return goapp.Nav().Aria("label", "Rooms kept on this device").Body(
				goapp.P().Text("These rooms are kept on this device and can be read offline:"),
				goapp.Ul().Class("rooms").Body(
					goapp.Range(r.names).Slice(func(i int) goapp.UI {
						return goapp.Li().DataSet("room", r.names[i]).Body(
							goapp.A().Href(PathRoomPrefix + r.names[i]).Text("#" + r.names[i]),
						)
					}),
				),
			)
		}),
	)
}

// updateNotice offers to reload once a new version of the app has been installed in the
// background.
type updateNotice struct {
	goapp.Compo
	available bool
}

func (n *updateNotice) OnMount(ctx goapp.Context) {
	n.available = ctx.AppUpdateAvailable()
}

func (n *updateNotice) OnAppUpdate(ctx goapp.Context) {
	n.available = ctx.AppUpdateAvailable()
}

func (n *updateNotice) Render() goapp.UI {
	// The live region is always present so that screen readers announce what appears in it.
	return goapp.Div().Class("update").Aria("live", "polite").Body(
		goapp.If(n.available, func() goapp.UI {
			return goapp.P().Body(
				goapp.Text("A new version of Kaiwa is available. "),
				goapp.Button().Type("button").Text("Reload").OnClick(func(ctx goapp.Context, e goapp.Event) {
					ctx.Reload()
				}),
			)
		}),
	)
}
