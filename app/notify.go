package app

import (
	"slices"
	"strings"

	goapp "github.com/maxence-charriere/go-app/v10/pkg/app"

	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// keyMuted holds the rooms muted on this browser ([]string): they show no notification, and
// keep their badges.
const keyMuted = keyPrefix + "muted"

// muted lists the rooms muted on this browser.
func (d localData) muted() []string {
	var rooms []string
	d.s.Get(keyMuted, &rooms)
	return rooms
}

// setMuted mutes or unmutes a room on this browser.
func (d localData) setMuted(room string, mute bool) {
	rooms := slices.DeleteFunc(d.muted(), func(r string) bool { return r == room })
	if mute {
		rooms = append(rooms, room)
	}
	d.s.Set(keyMuted, rooms)
}

// roomLabel is how a room is named to its user: a dm by the other person's name, any other
// room by #name.
func roomLabel(r proto.Room, me string) string {
	if r.Kind == proto.RoomDM {
		for _, m := range r.Members {
			if m != me {
				return m
			}
		}
	}
	return "#" + r.Name
}

// findRoom returns the session's room object of the name, if it has one.
func findRoom(sess *client.Session, name string) (proto.Room, bool) {
	rooms := sess.RoomList()
	i := slices.IndexFunc(rooms, func(r proto.Room) bool { return r.Name == name })
	if i < 0 {
		return proto.Room{Name: name}, false
	}
	return rooms[i], true
}

// notificationPermission is the browser's answer about notifications: "granted", "denied",
// "default" (not asked yet), or "" where the browser has none.
func notificationPermission() string {
	n := goapp.Window().Get("Notification")
	if !n.Truthy() || !goapp.Window().Get("navigator").Get("serviceWorker").Truthy() {
		return ""
	}
	return n.Get("permission").String()
}

// askNotifications asks the browser for permission to notify, and calls done with the answer
// on the UI goroutine. Browsers allow it only from a user's gesture: call it from a click.
func askNotifications(ctx goapp.Context, done func(permission string)) {
	n := goapp.Window().Get("Notification")
	if !n.Truthy() {
		return
	}
	var then goapp.Func
	then = goapp.FuncOf(func(this goapp.Value, args []goapp.Value) any {
		then.Release()
		ctx.Dispatch(func(goapp.Context) { done(notificationPermission()) })
		return nil
	})
	n.Call("requestPermission").Call("then", then, then)
}

// notify shows a system notification for a message in a dm or one that mentions the user,
// when the tab is hidden or shows another page, the user allowed notifications and has not
// muted the room. There is one notification per room (its tag), each replacing the last.
func (t *Tab) notify(ctx goapp.Context, sess *client.Session, m proto.Message) {
	me := sess.User().Name
	if m.Kind != "" || m.From == me || me == "" {
		return
	}
	room, _ := findRoom(sess, m.Room)
	if room.Kind != proto.RoomDM && !slices.Contains(m.Mentions, me) {
		return
	}
	hidden := goapp.Window().Get("document").Get("visibilityState").String() == "hidden"
	if !hidden && t.current == m.Room {
		return
	}
	if notificationPermission() != "granted" || slices.Contains(localData{ctx.LocalStorage()}.muted(), m.Room) {
		return
	}
	if _, _, read := sess.Unread(m.Room); m.Seq <= read {
		return // seen already, here or on another device
	}
	title := roomLabel(room, me)
	body := m.Text
	if room.Kind != proto.RoomDM {
		body = m.From + ": " + m.Text
	}
	opts := map[string]any{
		"tag":  m.Room,
		"body": body,
		"data": map[string]any{"url": PathRoomPrefix + m.Room},
	}
	var ready goapp.Func
	ready = goapp.FuncOf(func(this goapp.Value, args []goapp.Value) any {
		ready.Release()
		showNotification(args[0], title, opts, notifyTries)
		return nil
	})
	goapp.Window().Get("navigator").Get("serviceWorker").Get("ready").Call("then", ready)
}

// notifyTries bounds how many times one message's notification is shown (see showNotification).
const notifyTries = 3

// showNotification shows a notification through the service worker's registration reg, and
// checks that the browser kept it: Chromium may drop a notification it has just shown
// (showNotification resolves and getNotifications, asked at once, does not list it; seen with
// a fresh profile, about one first notification in two), and the worker could not find such a
// notification when it is clicked. One that is not listed is shown again, up to tries times in
// all; showing it again under its tag replaces it, so it never shows twice. A refusal to show it
// (no permission) changes nothing.
func showNotification(reg goapp.Value, title string, opts map[string]any, tries int) {
	var shown, listed, failed goapp.Func
	release := func() {
		shown.Release()
		listed.Release()
		failed.Release()
	}
	shown = goapp.FuncOf(func(this goapp.Value, args []goapp.Value) any {
		reg.Call("getNotifications", map[string]any{"tag": opts["tag"]}).Call("then", listed, failed)
		return nil
	})
	listed = goapp.FuncOf(func(this goapp.Value, args []goapp.Value) any {
		release()
		if args[0].Length() == 0 && tries > 1 {
			showNotification(reg, title, opts, tries-1)
		}
		return nil
	})
	failed = goapp.FuncOf(func(this goapp.Value, args []goapp.Value) any {
		release()
		return nil
	})
	reg.Call("showNotification", title, opts).Call("then", shown, failed)
}

// listenWorker opens the room of a notification the user clicked: the service worker posts
// {type: "kaiwa.open", url} to the tab it focuses.
func (t *Tab) listenWorker() {
	sw := goapp.Window().Get("navigator").Get("serviceWorker")
	if !sw.Truthy() {
		return
	}
	sw.Call("addEventListener", "message", goapp.FuncOf(func(this goapp.Value, args []goapp.Value) any {
		data := args[0].Get("data")
		if !data.Truthy() || data.Get("type").String() != "kaiwa.open" {
			return nil
		}
		url := data.Get("url").String()
		if !strings.HasPrefix(url, PathRoomPrefix) || !IsPage(url) {
			return nil
		}
		t.do(func(ctx goapp.Context) { ctx.Navigate(url) })
		return nil
	}))
	sw.Call("startMessages")
}
