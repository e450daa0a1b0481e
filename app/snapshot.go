package app

import (
	"html"
	"net/url"
	"strings"

	goapp "github.com/maxence-charriere/go-app/v10/pkg/app"

	"kaiwa/shared/proto"
)

// A returning user sees their room list before app.wasm has run: once the app has shown the
// signed-in room list, it keeps a copy of it as HTML (a snapshot) in Cache Storage, and the
// service worker (server/web/worker.js) answers the next load of "/" with the app's page and that
// snapshot in it, as long as the session hint cookie says someone is signed in. The snapshot
// stays above the app's own view until the app has something of its own to show (see
// contentShown), then goes. It is inert, and marked with the class "snapshot" and data-snapshot,
// so that nobody mistakes it for the live app: it carries none of the attributes the live markup
// gives automation (data-view, data-room, data-unread, data-user). Signing out, a refused
// refresh, a load with nobody signed in and another user signing in delete it (deleteSnapshot).
const (
	// SnapshotCache is the Cache Storage cache that holds the snapshot; the service worker keeps
	// it across versions of the app.
	SnapshotCache = "kaiwa-snapshot"
	// SnapshotKey is the snapshot's key in SnapshotCache.
	SnapshotKey = "/kaiwa-snapshot.html"
)

// snapshotHTML renders the signed-in room list of user as static HTML: the top bar and the
// user's rooms with their badges, as the landing shows them, every text and attribute escaped.
// It returns "" when the user is a member of no room: the live "No rooms yet" hint is soon
// there anyway.
func snapshotHTML(user string, rooms []proto.Room) string {
	var items strings.Builder
	for _, r := range rooms {
		if !r.Member {
			continue
		}
		class, link := "room-name", ""
		if r.Kind == proto.RoomDM {
			class += " dm"
		}
		if r.Unread > 0 {
			link = ` class="unread"`
		}
		items.WriteString(`<li><a href="` + esc(PathRoomPrefix+url.PathEscape(r.Name)) + `"` + link + `>`)
		items.WriteString(`<span class="` + class + `">` + esc(roomLabel(r, user)) + `</span>`)
		if r.Kind == proto.RoomPrivate {
			items.WriteString(`<span class="meta">private</span>`)
		}
		if r.Mentions > 0 {
			items.WriteString(`<span class="badge mention">@` + esc(countText(r.Mentions)) + `</span>`)
		}
		if r.Unread > 0 {
			items.WriteString(`<span class="badge">` + esc(countText(r.Unread)) + `</span>`)
		}
		items.WriteString(`</a></li>`)
	}
	if items.Len() == 0 {
		return ""
	}
	name := esc(user)
	return `<div class="kaiwa snapshot" inert aria-busy="true" data-snapshot="` + name + `">` +
		`<header class="topbar"><a class="brand" href="/">` +
		`<img src="/web/icon-192.png" alt="" aria-hidden="true" width="28" height="28"><span>Kaiwa</span></a>` +
		`<span class="topbar-user">` + name + `</span></header>` +
		`<main><div class="landing">` +
		`<section class="card whoami"><p>Signed in as <strong>` + name + `</strong></p></section>` +
		`<section class="card"><h1>Rooms</h1><ul class="rooms">` + items.String() + `</ul></section>` +
		`</div></main></div>`
}

// esc escapes s for HTML text and for a double-quoted attribute value.
func esc(s string) string { return html.EscapeString(s) }

// saveSnapshot keeps the snapshot of user's rooms for the next load, or deletes the kept one
// when there is nothing to show. A snapshot already kept is not written again, nor one of a
// user who is no longer signed in here (another tab signed out, or signed someone else in).
// Another tab may sign out while the snapshot is being written: the write is checked again
// once done, and undone when it lost that race.
func (t *Tab) saveSnapshot(ctx goapp.Context, user string, rooms []proto.Room) {
	if t == nil || !goapp.IsClient {
		return
	}
	if !snapshotOwner(ctx, user) {
		return
	}
	page := snapshotHTML(user, rooms)
	if page == t.snapshot {
		return
	}
	t.snapshot = page
	caches := goapp.Window().Get("caches")
	if !caches.Truthy() {
		return // not a secure context: there is no service worker to use it either
	}
	if page == "" {
		caches.Call("delete", SnapshotCache).Call("catch", t.ignore())
		return
	}
	resp := goapp.Window().Get("Response").New(page, map[string]any{
		"headers": map[string]any{"Content-Type": "text/html; charset=utf-8"},
	})
	caches.Call("open", SnapshotCache).Then(func(c goapp.Value) {
		c.Call("put", SnapshotKey, resp).Call("catch", t.ignore()).Then(func(goapp.Value) {
			t.do(func(ctx goapp.Context) {
				if !snapshotOwner(ctx, user) {
					t.deleteSnapshot()
				}
			})
		})
	})
}

// snapshotOwner reports whether user is still the one signed in here, as far as the page can
// tell: this browser keeps user's data (signing out clears it, another user's sign-in replaces
// it) and the session hint cookie is set (the server clears it when a session ends).
func snapshotOwner(ctx goapp.Context, user string) bool {
	return (localData{ctx.LocalStorage()}).user() == user && hasSessionHint()
}

// deleteSnapshot forgets the kept snapshot, as signing out does.
func (t *Tab) deleteSnapshot() {
	if t == nil || !goapp.IsClient {
		return
	}
	t.snapshot = ""
	if caches := goapp.Window().Get("caches"); caches.Truthy() {
		caches.Call("delete", SnapshotCache).Call("catch", t.ignore())
	}
}

// contentShown is called each time a page has content of its own to show, or knows it will show
// no room list: the snapshot above it, if the service worker put one there, goes, and the app
// dispatches ContentEvent.
func (t *Tab) contentShown() {
	if t == nil || !goapp.IsClient {
		return
	}
	win := goapp.Window()
	if el := win.Get("document").Call("querySelector", "body > .snapshot"); el.Truthy() {
		el.Call("remove")
	}
	win.Call("dispatchEvent", win.Get("Event").New(ContentEvent))
}

// contentShownAfterRender calls contentShown once the page has rendered what it has just set.
func (t *Tab) contentShownAfterRender(ctx goapp.Context) {
	ctx.Defer(func(goapp.Context) { t.contentShown() })
}

// ContentEvent is the window event the app dispatches each time a page shows content of its
// own. The service worker is registered on the first (the server rewrites go-app's app.js, and
// see insecureNotice), so that its install, which downloads app.wasm again for its cache, does
// not compete with the first load.
const ContentEvent = "kaiwa-content"
