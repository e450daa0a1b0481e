package app

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	goapp "github.com/maxence-charriere/go-app/v10/pkg/app"

	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// landing is the signed-in view of "/": who is signed in, the user's rooms by latest activity
// with their unread and mention badges (live), a way to start a direct message, the public
// rooms to browse and join, a form to create a room, the sends that the server refused, and a
// way to sign out.
type landing struct {
	goapp.Compo

	Tab  *Tab
	Auth auth

	rooms     []proto.Room // the session's room list, newest activity first
	loaded    bool
	loadErr   string
	newRoom   string
	newKind   proto.RoomKind
	creating  bool
	createErr string
	dmQuery   string
	dmFound   []string // users whose name starts with dmQuery
	dmErr     string
	joinErr   string
	logoutErr string
	notifPerm string           // notificationPermission()
	failed    []client.Pending // refused sends of every room, waiting for retry or discard
	sub       *client.Subscription
}

func (l *landing) OnMount(ctx goapp.Context) {
	sess := l.Tab.Session()
	if sess == nil {
		return
	}
	l.newKind = proto.RoomPublic
	l.notifPerm = notificationPermission()
	l.rooms = sess.RoomList()
	l.loaded = len(l.rooms) > 0
	if l.loaded {
		l.shown(ctx)
	}
	l.load(ctx)
	l.failed = failedSends(sess.Outbox(), "")
	l.sub = sess.Subscribe(client.Filter{Kinds: []client.EventKind{
		client.EventOutbox, client.EventRoom, client.EventUnread, client.EventMessage, client.EventRead,
	}})
	sub := l.sub
	ctx.Async(func() {
		for ev := range sub.C() {
			ctx.Dispatch(func(goapp.Context) {
				if ev.Kind == client.EventOutbox {
					l.failed = failedSends(ev.Outbox, "")
					return
				}
				l.rooms = sess.RoomList()
				if l.loaded {
					l.Tab.saveSnapshot(ctx, l.Auth.User.Name, l.rooms)
				}
			})
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

// load fetches the room list, which the session keeps live from then on.
func (l *landing) load(ctx goapp.Context) {
	l.loadErr = ""
	sess := l.Tab.Session()
	ctx.Async(func() {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		_, err := sess.Rooms(rctx)
		ctx.Dispatch(func(ctx goapp.Context) {
			if err != nil && !l.loaded {
				l.loadErr = errorText(err)
				l.Tab.contentShownAfterRender(ctx)
				return
			}
			l.rooms, l.loaded = sess.RoomList(), true
			l.shown(ctx)
		})
	})
}

// shown keeps the room list, now shown, as the next load's snapshot, and lets the snapshot
// of this load go once the list is rendered.
func (l *landing) shown(ctx goapp.Context) {
	l.Tab.saveSnapshot(ctx, l.Auth.User.Name, l.rooms)
	l.Tab.contentShownAfterRender(ctx)
}

// create creates a room of the chosen kind and opens it.
func (l *landing) create(ctx goapp.Context, e goapp.Event) {
	e.PreventDefault()
	name := strings.TrimSpace(l.newRoom)
	if l.creating || name == "" {
		return
	}
	if !proto.ValidRoomName(name) {
		l.createErr = errorCodeText(proto.CodeInvalidRoom, "")
		return
	}
	l.creating, l.createErr = true, ""
	sess, kind := l.Tab.Session(), l.newKind
	ctx.Async(func() {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		room, err := sess.NewRoom(rctx, name, kind)
		ctx.Dispatch(func(ctx goapp.Context) {
			l.creating = false
			if err != nil {
				l.createErr = errorText(err)
				return
			}
			ctx.Navigate(PathRoomPrefix + room.Name)
		})
	})
}

// searchUsers lists the users whose name starts with what was typed in "New message".
func (l *landing) searchUsers(ctx goapp.Context, e goapp.Event) {
	l.dmQuery = strings.ToLower(strings.TrimSpace(ctx.JSSrc().Get("value").String()))
	l.dmErr = ""
	query, sess := l.dmQuery, l.Tab.Session()
	if query == "" {
		l.dmFound = nil
		return
	}
	ctx.Async(func() {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		users, err := sess.Users(rctx, query)
		ctx.Dispatch(func(ctx goapp.Context) {
			if query != l.dmQuery {
				return // an answer to an older query
			}
			if err != nil {
				l.dmErr = errorText(err)
				return
			}
			me := l.Auth.User.Name
			l.dmFound = nil
			for _, u := range users {
				if u.Name != me {
					l.dmFound = append(l.dmFound, u.Name)
				}
			}
		})
	})
}

// startDM opens the direct messages with user, starting them if need be.
func (l *landing) startDM(ctx goapp.Context, user string) {
	sess := l.Tab.Session()
	l.dmErr = ""
	ctx.Async(func() {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		room, err := sess.DM(rctx, user)
		ctx.Dispatch(func(ctx goapp.Context) {
			if err != nil {
				l.dmErr = errorText(err)
				return
			}
			ctx.Navigate(PathRoomPrefix + room.Name)
		})
	})
}

func (l *landing) submitDM(ctx goapp.Context, e goapp.Event) {
	e.PreventDefault()
	if name, ok := proto.NormalizeUsername(l.dmQuery); ok {
		l.startDM(ctx, name)
	}
}

// join makes the user a member of a public room.
func (l *landing) join(ctx goapp.Context, room string) {
	sess, me := l.Tab.Session(), l.Auth.User.Name
	l.joinErr = ""
	ctx.Async(func() {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		err := sess.AddMember(rctx, room, me)
		if err == nil {
			_, err = sess.Room(rctx, room)
		}
		ctx.Dispatch(func(ctx goapp.Context) {
			if err != nil {
				l.joinErr = errorText(err)
				return
			}
			l.rooms = sess.RoomList()
		})
	})
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
			goapp.If(l.notifPerm == "default", func() goapp.UI {
				return goapp.Button().Type("button").Class("secondary").DataSet("action", "notifications").Text("Turn on notifications").
					OnClick(func(ctx goapp.Context, e goapp.Event) {
						askNotifications(ctx, func(p string) { l.notifPerm = p })
					})
			}),
			goapp.Button().Type("button").Class("secondary").DataSet("action", "logout").Text("Sign out").OnClick(l.logout),
			goapp.If(l.logoutErr != "", func() goapp.UI {
				return goapp.P().Class("error").Role("alert").Text(l.logoutErr)
			}),
		),
		goapp.Section().Class("card").Aria("labelledby", "rooms-title").Body(
			goapp.H1().ID("rooms-title").Text("Rooms"),
			l.renderRooms(),
			goapp.Form().Class("new-dm").OnSubmit(l.submitDM).Body(
				goapp.Label().For("dm-user").Text("New message"),
				goapp.Input().
					ID("dm-user").
					Name("user").
					Type("search").
					Placeholder("Name of a person").
					MaxLength(proto.UsernameMax).
					Attr("autocomplete", "off").
					Attr("autocapitalize", "none").
					Spellcheck(false).
					OnInput(l.searchUsers),
				goapp.Ul().Class("people").Aria("label", "People").Body(
					goapp.Range(l.dmFound).Slice(func(i int) goapp.UI {
						user := l.dmFound[i]
						return goapp.Li().Body(
							goapp.Button().Type("button").Class("secondary").DataSet("user", user).Text(user).
								OnClick(func(ctx goapp.Context, e goapp.Event) { l.startDM(ctx, user) }),
						)
					}),
				),
				goapp.If(l.dmErr != "", func() goapp.UI {
					return goapp.P().Class("error").Role("alert").Text(l.dmErr)
				}),
			),
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
					goapp.Select().Name("kind").Aria("label", "Who may see it").
						OnChange(func(ctx goapp.Context, e goapp.Event) {
							l.newKind = proto.RoomKind(ctx.JSSrc().Get("value").String())
						}).Body(
						goapp.Option().Value(string(proto.RoomPublic)).Selected(l.newKind != proto.RoomPrivate).Text("Public"),
						goapp.Option().Value(string(proto.RoomPrivate)).Selected(l.newKind == proto.RoomPrivate).Text("Private"),
					),
					goapp.Button().Type("submit").Disabled(l.creating).Text("Create"),
				),
				goapp.P().ID("new-room-hint").Class("hint").Text("Lowercase letters, digits and -. A public room is open to everyone; a private one to the people its members add."),
				goapp.If(l.createErr != "", func() goapp.UI {
					return goapp.P().Class("error").Role("alert").Text(l.createErr)
				}),
			),
		),
		l.renderPublic(),
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
	var mine []proto.Room
	for _, r := range l.rooms {
		if r.Member {
			mine = append(mine, r)
		}
	}
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
	case len(mine) == 0:
		return goapp.P().Class("hint").Text("No rooms yet. Create the first one.")
	}
	me := l.Auth.User.Name
	return goapp.Ul().Class("rooms").Body(
		goapp.Range(mine).Slice(func(i int) goapp.UI {
			return roomLink(mine[i], me)
		}),
	)
}

// roomLink is a room of the user's list: its name, and its unread and mention badges. The link
// carries data-unread (and data-mentions) while there are any.
func roomLink(r proto.Room, me string) goapp.UI {
	label := roomLabel(r, me)
	a := goapp.A().Href(PathRoomPrefix + url.PathEscape(r.Name))
	desc := ""
	if r.Unread > 0 {
		a = a.DataSet("unread", r.Unread)
		desc += ", " + countText(r.Unread) + " unread"
	}
	if r.Mentions > 0 {
		a = a.DataSet("mentions", r.Mentions)
		desc += ", " + countText(r.Mentions) + " mentioning you"
	}
	class := "room-name"
	if r.Kind == proto.RoomDM {
		class += " dm"
	}
	return goapp.Li().DataSet("room", r.Name).DataSet("kind", string(r.Kind)).Body(
		a.Body(
			goapp.Span().Class(class).Text(label),
			goapp.If(desc != "", func() goapp.UI {
				return goapp.Span().Class("visually-hidden").Text(desc)
			}),
			goapp.If(r.Kind == proto.RoomPrivate, func() goapp.UI {
				return goapp.Span().Class("meta").Text("private")
			}),
			goapp.If(r.Mentions > 0, func() goapp.UI {
				return goapp.Span().Class("badge mention").Aria("hidden", "true").Text("@" + countText(r.Mentions))
			}),
			goapp.If(r.Unread > 0, func() goapp.UI {
				return goapp.Span().Class("badge").Aria("hidden", "true").Text(countText(r.Unread))
			}),
		),
	)
}

// renderPublic lists the public rooms the user is not a member of: each may be read, and
// joined.
func (l *landing) renderPublic() goapp.UI {
	var others []proto.Room
	for _, r := range l.rooms {
		if !r.Member && r.Kind != proto.RoomDM && r.Kind != proto.RoomPrivate {
			others = append(others, r)
		}
	}
	return goapp.If(len(others) > 0, func() goapp.UI {
		return goapp.Section().Class("card").Aria("labelledby", "public-title").Body(
			goapp.H2().ID("public-title").Text("Public rooms"),
			goapp.Ul().Class("rooms public").Body(
				goapp.Range(others).Slice(func(i int) goapp.UI {
					r := others[i]
					return goapp.Li().DataSet("room", r.Name).DataSet("kind", string(r.Kind)).Body(
						goapp.A().Href(PathRoomPrefix+url.PathEscape(r.Name)).Body(
							goapp.Span().Class("room-name").Text("#"+r.Name),
							goapp.Span().Class("meta").Text(messageCount(r.LastSeq)),
						),
						goapp.Button().Type("button").Class("secondary").DataSet("action", "join").
							OnClick(func(ctx goapp.Context, e goapp.Event) { l.join(ctx, r.Name) }).Body(
							goapp.Text("Join"),
							goapp.Span().Class("visually-hidden").Text(" #"+r.Name),
						),
					)
				}),
			),
			goapp.If(l.joinErr != "", func() goapp.UI {
				return goapp.P().Class("error").Role("alert").Text(l.joinErr)
			}),
		)
	})
}

// messageCount says how many messages a room holds; seq counts from 1, so last_seq is the count.
func messageCount(n uint64) string {
	if n == 1 {
		return "1 message"
	}
	return fmt.Sprintf("%d messages", n)
}
