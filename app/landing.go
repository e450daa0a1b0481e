package app

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	goapp "github.com/maxence-charriere/go-app/v10/pkg/app"

	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// landing is the signed-in view of "/": who is signed in, the rooms, a form to create one, the
// sends that the server refused, and a way to sign out.
type landing struct {
	goapp.Compo

	Tab  *Tab
	Auth auth

	rooms     []proto.Room
	loaded    bool
	loadErr   string
	newRoom   string
	creating  bool
	createErr string
	logoutErr string
	failed    []client.Pending // refused sends of every room, waiting for retry or discard
	sub       *client.Subscription
}

func (l *landing) OnMount(ctx goapp.Context) {
	sess := l.Tab.Session()
	if sess == nil {
		return
	}
	l.load(ctx)
	l.failed = failedSends(sess.Outbox(), "")
	l.sub = sess.Subscribe(client.Filter{Kinds: []client.EventKind{client.EventOutbox}})
	sub := l.sub
	ctx.Async(func() {
		for ev := range sub.C() {
			ctx.Dispatch(func(goapp.Context) { l.failed = failedSends(ev.Outbox, "") })
		}
	})
}

func (l *landing) OnDismount() {
	if l.sub != nil {
		l.sub.Close()
	}
}

// failedSends returns the failed sends of the outbox, those of one room when room is not "".
func failedSends(outbox []client.Pending, room string) []client.Pending {
	var out []client.Pending
	for _, p := range outbox {
		if p.Failed && (room == "" || p.Room == room) {
			out = append(out, p)
		}
	}
	return out
}

// load fetches the room list.
func (l *landing) load(ctx goapp.Context) {
	l.loadErr = ""
	sess := l.Tab.Session()
	ctx.Async(func() {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		rooms, err := sess.Rooms(rctx)
		ctx.Dispatch(func(ctx goapp.Context) {
			if err != nil {
				l.loadErr = errorText(err)
				return
			}
			l.rooms, l.loaded = rooms, true
		})
	})
}

func (l *landing) create(ctx goapp.Context, e goapp.Event) {
	e.PreventDefault()
	name := strings.TrimSpace(l.newRoom)
	if l.creating || name == "" {
		return
	}
	l.creating, l.createErr = true, ""
	sess := l.Tab.Session()
	ctx.Async(func() {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		room, err := sess.CreateRoom(rctx, name)
		ctx.Dispatch(func(ctx goapp.Context) {
			l.creating = false
			if err != nil {
				l.createErr = errorText(err)
				return
			}
			l.newRoom = ""
			// go-app drops an empty value instead of setting it, so clear the field through
			// the form (ctx's source).
			ctx.JSSrc().Call("reset")
			l.rooms = insertRoom(l.rooms, room)
		})
	})
}

// insertRoom adds room to rooms, kept sorted by name, unless a room of that name is there.
func insertRoom(rooms []proto.Room, room proto.Room) []proto.Room {
	i, found := slices.BinarySearchFunc(rooms, room.Name, func(r proto.Room, name string) int {
		return strings.Compare(r.Name, name)
	})
	if found {
		return rooms
	}
	return slices.Insert(slices.Clone(rooms), i, room)
}

func (l *landing) logout(ctx goapp.Context, e goapp.Event) {
	l.logoutErr = ""
	tab := l.Tab
	ctx.Async(func() {
		if err := tab.signOut(ctx); err != nil {
			// The session may still be alive on the server: say so rather than pretend.
			ctx.Dispatch(func(ctx goapp.Context) { l.logoutErr = errorText(err) })
		}
	})
}

func (l *landing) Render() goapp.UI {
	name := l.Auth.User.Name
	return goapp.Div().Class("landing").DataSet("view", "home").Body(
		goapp.Section().Class("card whoami").Aria("label", "Account").Body(
			goapp.P().DataSet("user", name).Body(
				goapp.Text("Signed in as "),
				goapp.Strong().Text(name),
			),
			goapp.Button().Type("button").Class("secondary").DataSet("action", "logout").Text("Sign out").OnClick(l.logout),
			goapp.If(l.logoutErr != "", func() goapp.UI {
				return goapp.P().Class("error").Role("alert").Text(l.logoutErr)
			}),
		),
		goapp.Section().Class("card").Aria("labelledby", "rooms-title").Body(
			goapp.H1().ID("rooms-title").Text("Rooms"),
			l.renderRooms(),
			goapp.Form().Class("create-room").OnSubmit(l.create).Body(
				goapp.Label().For("new-room").Text("New room"),
				goapp.Div().Class("row").Body(
					goapp.Input().
						ID("new-room").
						Name("room").
						Type("text").
						Required(true).
						MaxLength(proto.RoomNameMax).
						Attr("autocomplete", "off").
						Attr("autocapitalize", "none").
						Spellcheck(false).
						Aria("describedby", "new-room-hint").
						Value(l.newRoom).
						OnInput(l.ValueTo(&l.newRoom)),
					goapp.Button().Type("submit").Disabled(l.creating).Text("Create"),
				),
				goapp.P().ID("new-room-hint").Class("hint").Text("Lowercase letters, digits and -"),
				goapp.If(l.createErr != "", func() goapp.UI {
					return goapp.P().Class("error").Role("alert").Text(l.createErr)
				}),
			),
		),
		goapp.If(len(l.failed) > 0, func() goapp.UI {
			return goapp.Section().Class("card").Aria("labelledby", "failed-title").Body(
				goapp.H2().ID("failed-title").Text("Messages not sent"),
				goapp.Ul().Class("log-list").Body(
					goapp.Range(l.failed).Slice(func(i int) goapp.UI {
						return failedItem(l.Tab.Session(), l.failed[i], "", true)
					}),
				),
			)
		}),
	)
}

func (l *landing) renderRooms() goapp.UI {
	switch {
	case l.loadErr != "":
		return goapp.Div().Body(
			goapp.P().Class("error").Role("alert").Text(l.loadErr),
			goapp.Button().Type("button").Class("secondary").Text("Try again").OnClick(func(ctx goapp.Context, e goapp.Event) {
				l.load(ctx)
			}),
		)
	case !l.loaded:
		return goapp.P().Class("hint").Aria("busy", "true").Text("Loading rooms…")
	case len(l.rooms) == 0:
		return goapp.P().Class("hint").Text("No rooms yet. Create the first one.")
	}
	return goapp.Ul().Class("rooms").Body(
		goapp.Range(l.rooms).Slice(func(i int) goapp.UI {
			r := l.rooms[i]
			return goapp.Li().DataSet("room", r.Name).Body(
				goapp.A().Href(PathRoomPrefix+url.PathEscape(r.Name)).Body(
					goapp.Span().Class("room-name").Text("#"+r.Name),
					goapp.Span().Class("meta").Text(messageCount(r.LastSeq)),
				),
			)
		}),
	)
}

// messageCount says how many messages a room holds; seq counts from 1, so last_seq is the count.
func messageCount(n uint64) string {
	if n == 1 {
		return "1 message"
	}
	return fmt.Sprintf("%d messages", n)
}
