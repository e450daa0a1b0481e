package app

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	goapp "github.com/maxence-charriere/go-app/v10/pkg/app"

	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

const (
	// pageSize is how many messages one history request asks for.
	pageSize = 50
	// typingShown is how long "X is typing" stays after X's last typing frame.
	typingShown = 4 * time.Second
	// typingEvery spaces the typing frames the composer sends; the server relays one per 2 s.
	typingEvery = 2 * time.Second
	// olderMargin is how close to the top of the log, in CSS pixels, scrolling loads older
	// messages.
	olderMargin = 200
)

// roomView is a room's conversation: history with scroll-back, live messages, who is online and
// typing, the connection state and the composer. It uses the tab's session, which it asks to
// join the room and whose events for the room it subscribes to while mounted; the room stays
// joined afterwards, so that its saved messages stay current. Until the session is connected
// it shows the room's saved messages and outbox.
type roomView struct {
	goapp.Compo

	Tab  *Tab
	Room string

	me        string          // the signed-in user, or the one the saved data belongs to
	msgs      []proto.Message // delivered, ascending by seq, each seq once
	pending   []client.Pending
	state     client.State
	online    []string
	typing    map[string]time.Time // user → until when to show them typing
	history   bool                 // the newest page has been read from the server
	older     bool                 // a page of older messages is being read
	notFound  bool                 // the server says the room does not exist (for this user)
	err       string
	lastTyped time.Time

	info      proto.Room // the room object, once the session knows it
	divider   uint64     // the read marker when the room was opened: "new messages" below it
	divided   bool       // the room had unread messages when opened: the divider shows
	knownRead bool       // divider is set (the session knew the marker)
	marked    uint64     // the highest seq this view marked read
	below     int        // new messages that arrived while the log was scrolled up
	editing   uint64     // the seq of the message of ours being edited, 0 when none
	muted     bool
	leaving   bool // the user asked to leave the room: its removal leads back to the list
	memberErr string

	sess     *client.Session
	sub      *client.Subscription
	release  func() // removes the composer's key and submit listeners
	unlisten func() // removes the visibility listener
}

// CompoID makes go-app mount a new view for another room.
func (v *roomView) CompoID() string { return v.Room }

func (v *roomView) OnMount(ctx goapp.Context) {
	v.sess = v.Tab.Session()
	if v.sess == nil {
		return
	}
	v.me = v.sess.User().Name
	if v.me == "" {
		v.me = localData{ctx.LocalStorage()}.user()
	}
	v.msgs = slices.Clone(v.Tab.messages(ctx, v.Room))
	v.pending = roomOutbox(v.sess.Outbox(), v.Room)
	v.state = v.sess.State()
	if v.state == client.StateConnected {
		v.online = v.Tab.online[v.Room]
	}
	v.typing = map[string]time.Time{}
	v.Tab.current = v.Room
	v.muted = slices.Contains(localData{ctx.LocalStorage()}.muted(), v.Room)
	if info, ok := findRoom(v.sess, v.Room); ok {
		v.setInfo(ctx, info)
	}

	// Subscribe before joining, so that nothing the join brings is missed.
	v.sub = v.sess.Subscribe(client.Filter{Room: v.Room})
	sub := v.sub
	ctx.Async(func() {
		for ev := range sub.C() {
			ctx.Dispatch(func(ctx goapp.Context) { v.apply(ctx, ev) })
		}
	})
	if len(v.msgs) > 0 {
		// Resume from what this browser saw: the server replays what came since. (A room the
		// session joined already stays as it is.)
		v.sess.JoinAfter(v.Room, v.msgs[len(v.msgs)-1].Seq)
	} else {
		// From now on; the newest page of history, read next, covers what came before.
		v.sess.Join(v.Room)
	}
	if v.sess.AccessToken() != "" {
		v.loadHistory(ctx)
	}
	ctx.Defer(func(ctx goapp.Context) {
		v.scrollToBottom()
		focusID(titleID)
		v.listenComposer(ctx)
		v.listenVisibility(ctx)
		v.markSeen()
	})
}

// setInfo takes the room object the session has: the title (a dm is named by the other
// person), and, the first time, the read marker where the "new messages" divider goes.
func (v *roomView) setInfo(ctx goapp.Context, info proto.Room) {
	v.info = info
	if !v.knownRead && info.Member {
		v.knownRead = true
		v.divider, v.divided = info.ReadSeq, info.Unread > 0
	}
	v.Tab.setTitle(ctx, roomLabel(info, v.me)+" · Kaiwa")
}

// listenVisibility marks what is on screen read when the tab becomes visible again.
func (v *roomView) listenVisibility(ctx goapp.Context) {
	doc := goapp.Window().Get("document")
	f := goapp.FuncOf(func(this goapp.Value, args []goapp.Value) any {
		ctx.Dispatch(func(goapp.Context) { v.markSeen() })
		return nil
	})
	doc.Call("addEventListener", "visibilitychange", f)
	v.unlisten = func() {
		doc.Call("removeEventListener", "visibilitychange", f)
		f.Release()
	}
}

// markSeen moves the read marker to the newest message on screen, while the tab is visible,
// in a room the user is a member of (a public room read without joining has no marker).
// The session sends it to the server at most once a second per room.
func (v *roomView) markSeen() {
	if v.sess == nil || !v.info.Member || len(v.msgs) == 0 || goapp.Window().Get("document").Get("visibilityState").String() != "visible" {
		return
	}
	seq := v.newestOnScreen()
	if seq <= v.marked {
		return
	}
	v.marked = seq
	v.sess.MarkRead(v.Room, seq)
}

// newestOnScreen returns the seq of the newest message in sight in the log: the newest of all
// (edits and deletions after it included) when the log is at its end.
func (v *roomView) newestOnScreen() uint64 {
	if v.nearBottom() {
		return v.msgs[len(v.msgs)-1].Seq
	}
	log := goapp.Window().GetElementByID(logID)
	if !log.Truthy() {
		return 0
	}
	box := log.Call("getBoundingClientRect")
	top, bottom := box.Get("top").Float(), box.Get("bottom").Float()
	items := log.Call("querySelectorAll", "[data-seq]")
	for i := items.Length() - 1; i >= 0; i-- {
		el := items.Index(i)
		r := el.Call("getBoundingClientRect")
		if r.Get("top").Float() < bottom && r.Get("bottom").Float() > top {
			seq, _ := strconv.ParseUint(el.Get("dataset").Get("seq").String(), 10, 64)
			return seq
		}
	}
	return 0
}

func (v *roomView) OnDismount() {
	if v.Tab.current == v.Room {
		v.Tab.current = ""
	}
	if v.sub != nil {
		v.sub.Close()
	}
	if v.unlisten != nil {
		v.unlisten()
	}
	if v.release != nil {
		v.release()
	}
}

// listenComposer makes Enter (see sendsOnEnter) and the form's submit send the message. Its
// listeners are plain browser listeners, because they must prevent the default (a new line, a
// page load) while the event is dispatched: go-app runs its handlers later, on its UI goroutine.
func (v *roomView) listenComposer(ctx goapp.Context) {
	form, field := goapp.Window().GetElementByID(formID), goapp.Window().GetElementByID(composerID)
	if !form.Truthy() || !field.Truthy() {
		return
	}
	keydown := goapp.FuncOf(func(this goapp.Value, args []goapp.Value) any {
		if e := args[0]; sendsOnEnter(e) {
			e.Call("preventDefault")
			ctx.Dispatch(v.send)
		}
		return nil
	})
	// A keydown whose default is prevented inserts nothing in a browser; a key event that
	// arrives as keydown and a separate keypress (as DevTools sends them) needs both.
	keypress := goapp.FuncOf(func(this goapp.Value, args []goapp.Value) any {
		if e := args[0]; sendsOnEnter(e) {
			e.Call("preventDefault")
		}
		return nil
	})
	submit := goapp.FuncOf(func(this goapp.Value, args []goapp.Value) any {
		args[0].Call("preventDefault")
		ctx.Dispatch(v.send)
		return nil
	})
	field.Call("addEventListener", "keydown", keydown)
	field.Call("addEventListener", "keypress", keypress)
	form.Call("addEventListener", "submit", submit)
	v.release = func() {
		field.Call("removeEventListener", "keydown", keydown)
		field.Call("removeEventListener", "keypress", keypress)
		form.Call("removeEventListener", "submit", submit)
		keydown.Release()
		keypress.Release()
		submit.Release()
	}
}

// roomOutbox returns the sends of the outbox that belong to room.
func roomOutbox(outbox []client.Pending, room string) []client.Pending {
	var out []client.Pending
	for _, p := range outbox {
		if p.Room == room {
			out = append(out, p)
		}
	}
	return out
}

// apply handles one session event on the UI goroutine.
func (v *roomView) apply(ctx goapp.Context, ev client.Event) {
	switch ev.Kind {
	case client.EventToken:
		v.me = ev.Token.User.Name
		if !v.history {
			v.loadHistory(ctx)
		}
	case client.EventState:
		v.state = ev.State
		if ev.State != client.StateConnected {
			// Nobody can be said to be online while this tab cannot see; the server sends
			// the list again on the next join.
			v.online = nil
		} else if !v.history {
			v.loadHistory(ctx)
		}
	case client.EventMessage:
		v.show(ctx, []proto.Message{ev.Message}) // the tab saves live messages itself
		delete(v.typing, ev.Message.From)
	case client.EventAck:
		// The ack can come before the broadcast of the same message: show it delivered now.
		i := slices.IndexFunc(v.pending, func(p client.Pending) bool { return p.ID == ev.ID })
		if i >= 0 {
			p := v.pending[i]
			v.deliver(ctx, []proto.Message{{Room: p.Room, Seq: ev.Seq, ID: p.ID, From: v.me, Text: p.Text, TS: time.Now()}})
		}
	case client.EventOutbox:
		atBottom := v.nearBottom()
		v.pending = roomOutbox(ev.Outbox, v.Room)
		for _, m := range v.msgs {
			v.pending = slices.DeleteFunc(v.pending, func(p client.Pending) bool { return p.ID == m.ID })
		}
		if atBottom {
			ctx.Defer(func(goapp.Context) { v.scrollToBottom() })
		}
	case client.EventPresence:
		if v.state == client.StateConnected {
			v.online = ev.Online
		}
	case client.EventTyping:
		if ev.User != v.me {
			v.typing[ev.User] = time.Now().Add(typingShown)
			ctx.After(typingShown, func(ctx goapp.Context) {}) // render again when it expires
		}
	case client.EventRoom:
		v.setInfo(ctx, ev.RoomInfo)
		ctx.Defer(func(goapp.Context) { v.markSeen() })
		if !ev.RoomInfo.Member && v.leaving {
			ctx.Navigate(PathHome)
		} else if !ev.RoomInfo.Member && ev.RoomInfo.Kind != proto.RoomPublic {
			v.notFound = true // no longer open to the user
		}
	case client.EventUnread:
		if info, ok := findRoom(v.sess, v.Room); ok {
			v.setInfo(ctx, info)
		}
	case client.EventJoinRefused:
		if ev.Code == proto.CodeInvalidRoom || ev.Code == proto.CodeNotFound {
			v.notFound = true
		} else {
			v.err = errorCodeText(ev.Code, ev.Text)
		}
	case client.EventError:
		if ev.ID == "" || !slices.ContainsFunc(v.pending, func(p client.Pending) bool { return p.ID == ev.ID }) {
			v.err = errorCodeText(ev.Code, ev.Text)
		}
		// A refused send of ours shows as failed in the log, from its outbox change.
	}
}

// deliver shows delivered messages and saves them with the room's.
func (v *roomView) deliver(ctx goapp.Context, msgs []proto.Message) {
	v.show(ctx, msgs)
	v.Tab.remember(ctx, v.Room, msgs)
}

// show adds delivered messages and drops their pending copies, keeping the log at its end if it
// was there.
func (v *roomView) show(ctx goapp.Context, msgs []proto.Message) {
	atBottom := v.nearBottom()
	newest := uint64(0)
	if len(v.msgs) > 0 {
		newest = v.msgs[len(v.msgs)-1].Seq
	}
	v.msgs = mergeMessages(v.msgs, msgs)
	for _, m := range msgs {
		v.pending = slices.DeleteFunc(v.pending, func(p client.Pending) bool { return p.ID == m.ID })
		if !atBottom && m.Seq > newest && m.Kind == "" && m.From != v.me {
			v.below++
		}
	}
	if atBottom {
		ctx.Defer(func(goapp.Context) { v.scrollToBottom(); v.markSeen() })
	} else {
		ctx.Defer(func(goapp.Context) { v.markSeen() })
	}
}

// jumpToLatest scrolls the log to its end.
func (v *roomView) jumpToLatest(ctx goapp.Context, e goapp.Event) {
	v.scrollToBottom()
	v.below = 0
	v.markSeen()
}

// loadHistory reads the newest page of the room through the session.
func (v *roomView) loadHistory(ctx goapp.Context) {
	sess, room := v.sess, v.Room
	v.history = true
	ctx.Async(func() {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		page, err := sess.Messages(rctx, room, client.PageQuery{Limit: pageSize})
		ctx.Dispatch(func(ctx goapp.Context) {
			if err != nil {
				if client.IsCode(err, proto.CodeNotFound) {
					v.notFound = true
					return
				}
				// Again soon, or when the session connects.
				v.history = false
				ctx.After(2*time.Second, func(ctx goapp.Context) {
					if !v.history && v.sess.AccessToken() != "" {
						v.loadHistory(ctx)
					}
				})
				return
			}
			v.deliver(ctx, page.Messages)
			ctx.Defer(func(goapp.Context) { v.scrollToBottom(); v.markSeen() })
		})
	})
}

// loadOlder reads the page of messages just before the oldest one shown, keeping the messages
// on screen where they are.
func (v *roomView) loadOlder(ctx goapp.Context) {
	if v.older || !v.hasOlder() {
		return
	}
	sess, room, before := v.sess, v.Room, v.msgs[0].Seq
	v.older = true
	ctx.Async(func() {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		page, err := sess.Messages(rctx, room, client.PageQuery{Before: before, Limit: pageSize})
		ctx.Dispatch(func(ctx goapp.Context) {
			v.older = false
			if err != nil {
				v.err = errorText(err)
				return
			}
			// The message that was first stays where it was on screen. (Its own height may
			// change: with older messages of its author above, it joins their group.)
			first := strconv.FormatUint(before, 10)
			offset := func() float64 {
				log := goapp.Window().GetElementByID(logID)
				if !log.Truthy() {
					return 0
				}
				el := log.Call("querySelector", `[data-seq="`+first+`"]`)
				if !el.Truthy() {
					return 0
				}
				return el.Call("getBoundingClientRect").Get("top").Float() - log.Call("getBoundingClientRect").Get("top").Float()
			}
			was := offset()
			v.msgs = mergeMessages(page.Messages, v.msgs)
			ctx.Defer(func(goapp.Context) {
				if log := goapp.Window().GetElementByID(logID); log.Truthy() {
					log.Set("scrollTop", log.Get("scrollTop").Float()+offset()-was)
				}
			})
		})
	})
}

// scrolled loads older messages once the log is scrolled near its top.
func (v *roomView) scrolled(ctx goapp.Context, e goapp.Event) {
	if ctx.JSSrc().Get("scrollTop").Int() < olderMargin {
		v.loadOlder(ctx)
	}
	v.markSeen()
	if v.below > 0 && v.nearBottom() {
		v.below = 0
		return
	}
	ctx.PreventUpdate()
}

// hasOlder reports whether messages exist before the oldest shown: seq counts from 1 without
// gaps.
func (v *roomView) hasOlder() bool {
	return len(v.msgs) > 0 && v.msgs[0].Seq > 1
}

// sendsOnEnter reports whether a keydown event sends the message: Enter sends, Shift+Enter
// starts a new line, and so does Enter while an input method composes text. On a touch screen
// Enter starts a new line and the button sends: there is no Shift key to hold.
func sendsOnEnter(e goapp.Value) bool {
	return e.Get("key").String() == "Enter" && !e.Get("shiftKey").Bool() && !e.Get("isComposing").Bool() && !touchScreen()
}

// touchScreen reports whether the main pointer is a finger.
func touchScreen() bool {
	return goapp.Window().Call("matchMedia", "(pointer: coarse)").Get("matches").Bool()
}

func (v *roomView) input(ctx goapp.Context, e goapp.Event) {
	if now := time.Now(); now.Sub(v.lastTyped) >= typingEvery && v.sess != nil {
		v.lastTyped = now
		v.sess.Typing(v.Room)
	}
	ctx.PreventUpdate()
}

// send queues the composer's text: it shows pending at once, is saved in the outbox until its
// ack, and is sent whenever the session is connected. A text that cannot be sent stays in the
// composer with the reason; the focus stays there in every case.
func (v *roomView) send(ctx goapp.Context) {
	field := goapp.Window().GetElementByID(composerID)
	defer field.Call("focus")
	text := strings.TrimSpace(field.Get("value").String())
	if text == "" {
		return
	}
	if _, code := proto.NormalizeText(text); code != "" {
		v.err = errorCodeText(code, "")
		return
	}
	if n := utf8.RuneCountInString(text); n > proto.TextMax {
		v.err = errorCodeText(proto.CodeTextTooLong, "")
		return
	}
	v.err = ""
	v.sess.Send(v.Room, text) // its outbox change shows it pending
	field.Set("value", "")
	ctx.Defer(func(goapp.Context) { v.scrollToBottom() })
}

// Element ids of the room view.
const (
	logID      = "room-log"
	composerID = "room-message"
	formID     = "room-composer"
	titleID    = "room-title"
	hintID     = "room-message-hint"
)

// nearBottom reports whether the log is scrolled to (about) its end, where new messages keep it.
func (v *roomView) nearBottom() bool {
	log := goapp.Window().GetElementByID(logID)
	if !log.Truthy() {
		return true
	}
	return log.Get("scrollHeight").Int()-log.Get("scrollTop").Int()-log.Get("clientHeight").Int() < 80
}

func (v *roomView) scrollToBottom() {
	if log := goapp.Window().GetElementByID(logID); log.Truthy() {
		log.Set("scrollTop", log.Get("scrollHeight"))
	}
}

// typingNames lists who is typing now, sorted.
func (v *roomView) typingNames(now time.Time) []string {
	var names []string
	for name, until := range v.typing {
		if now.Before(until) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func (v *roomView) Render() goapp.UI {
	if v.notFound {
		return notFoundView("There is no room #" + v.Room + ", or it is not open to you.")
	}
	// The children keep their places whatever the state, so that an error or a change of
	// state never replaces the composer (and the draft and focus in it).
	return goapp.Section().Class("room").DataSet("view", "room").DataSet("room", v.Room).Aria("labelledby", titleID).Body(
		goapp.Div().Class("room-head").Body(
			goapp.A().Class("back").Href(PathHome).Aria("label", "All rooms").Body(
				goapp.Span().Aria("hidden", "true").Text("‹ "),
				goapp.Text("Rooms"),
			),
			goapp.H1().ID(titleID).TabIndex(-1).Text(roomLabel(v.roomInfo(), v.me)),
			statusLine(v.state),
			goapp.Button().Type("button").Class("secondary").DataSet("action", "mute").
				Aria("pressed", strconv.FormatBool(v.muted)).
				Title("No notifications from this room; its badge stays").
				Text("Mute").OnClick(v.toggleMute),
			v.renderMembers(),
		),
		goapp.Div().Class("room-body").Body(
			v.renderLog(),
			goapp.Aside().Class("presence").Aria("label", "Online").Body(
				goapp.H2().Text("Online"),
				goapp.Ul().Body(
					goapp.Range(v.online).Slice(func(i int) goapp.UI {
						return goapp.Li().Text(v.online[i])
					}),
				),
				goapp.If(v.state != client.StateConnected, func() goapp.UI {
					return goapp.P().Class("hint").Text("Not known while disconnected")
				}),
			),
		),
		goapp.Div().Class("jump").Body(
			goapp.If(v.below > 0, func() goapp.UI {
				return goapp.Button().Type("button").DataSet("action", "jump").DataSet("new", v.below).
					Text(fmt.Sprintf("Jump to latest (%d new)", v.below)).OnClick(v.jumpToLatest)
			}),
		),
		goapp.P().Class("typing").Aria("live", "polite").Text(typingText(v.typingNames(time.Now()))),
		goapp.P().Class("error").Role("alert").Hidden(v.err == "").Text(v.err),
		goapp.Form().ID(formID).Class("composer").Aria("label", "Write a message").Body(
			goapp.Label().For(composerID).Class("visually-hidden").Text("Message"),
			goapp.Textarea().
				ID(composerID).
				Name("message").
				Rows(2).
				Placeholder("Write a message").
				Aria("describedby", hintID).
				Attr("autocomplete", "off").
				OnInput(v.input),
			goapp.Button().Type("submit").Text("Send"),
			goapp.P().ID(hintID).Class("visually-hidden").Text("Enter sends, Shift+Enter starts a new line; on a touch screen, the Send button sends."),
		),
	)
}

func (v *roomView) renderLog() goapp.UI {
	// role="log" is on the scrolling box, so that the list inside keeps its list semantics.
	return goapp.Div().ID(logID).Class("log").Role("log").Aria("label", "Messages").TabIndex(0).OnScroll(v.scrolled).Body(
		goapp.If(v.hasOlder(), func() goapp.UI {
			return goapp.Div().Class("older").Body(
				goapp.Button().Type("button").Class("secondary").Disabled(v.older).Text("Load older messages").
					OnClick(func(ctx goapp.Context, e goapp.Event) { v.loadOlder(ctx) }),
			)
		}),
		goapp.Ol().Class("messages").Body(v.logItems()...),
	)
}

// roomInfo is the room object, or as much as its name says while the session has none.
func (v *roomView) roomInfo() proto.Room {
	if v.info.Name == "" {
		return proto.Room{Name: v.Room}
	}
	return v.info
}

// logItems lists the log's entries: day separators, the "new messages" divider, the messages
// (consecutive ones of one author within groupWithin grouped), then the sends still pending.
func (v *roomView) logItems() []goapp.UI {
	me, now := v.me, time.Now()
	shown := foldEdits(v.msgs)
	items := make([]goapp.UI, 0, len(shown)+len(v.pending)+4)
	for i, m := range shown {
		var prev *proto.Message
		if i > 0 {
			prev = &shown[i-1]
		}
		newDay := prev == nil || !sameDay(prev.TS, m.TS)
		if newDay {
			items = append(items, goapp.Li().Class("day").Role("separator").DataSet("day", m.TS.Local().Format(time.DateOnly)).Body(
				goapp.Span().Text(dayText(m.TS, now)),
			))
		}
		divided := v.divided && m.Seq > v.divider && (prev == nil || prev.Seq <= v.divider)
		if divided {
			items = append(items, goapp.Li().Class("divider").Role("separator").DataSet("divider", "new").Body(
				goapp.Span().Text("New messages"),
			))
		}
		grouped := !newDay && !divided && prev.From == m.From && m.TS.Sub(prev.TS) < groupWithin
		items = append(items, v.messageItem(m, me, grouped))
	}
	for _, p := range v.pending {
		switch {
		case p.Failed:
			items = append(items, failedItem(v.sess, p, me, false))
		case p.Kind == "":
			items = append(items, pendingItem(p, me))
		}
	}
	return items
}

// messageItem is a delivered message: its text as text nodes, links and highlighted mentions
// of the user, never markup. The user's own messages may be edited and deleted.
func (v *roomView) messageItem(m proto.Message, me string, grouped bool) goapp.UI {
	class := "msg"
	if m.From == me {
		class += " mine"
	}
	if grouped {
		class += " grouped"
	}
	if slices.Contains(m.Mentions, me) {
		class += " mentions-me"
	}
	if m.Deleted {
		class += " deleted"
	}
	mine := m.From == me && !m.Deleted
	var body goapp.UI
	switch {
	case m.Deleted:
		body = goapp.P().Class("text").Body(goapp.Em().Text("message deleted"))
	case v.editing == m.Seq:
		body = v.editForm(m)
	default:
		body = goapp.P().Class("text").Body(
			append(richText(m.Text, me), goapp.If(m.EditedAt != nil, func() goapp.UI {
				return goapp.Span().Class("edited").Text(" (edited)")
			}))...,
		)
	}
	return goapp.Li().Class(class).DataSet("seq", m.Seq).DataSet("id", m.ID).DataSet("from", m.From).Body(
		goapp.Div().Class("msg-meta").Body(
			goapp.Span().Class("from").Text(m.From),
			goapp.Time().DateTime("%s", m.TS.Format(time.RFC3339)).Text(m.TS.Local().Format("15:04")),
		),
		body,
		goapp.If(mine && v.editing != m.Seq, func() goapp.UI {
			seq := m.Seq
			return goapp.Div().Class("msg-actions").Body(
				goapp.Button().Type("button").Class("link").DataSet("action", "edit").Text("Edit").
					OnClick(func(ctx goapp.Context, e goapp.Event) { v.editing = seq }),
				goapp.Button().Type("button").Class("link").DataSet("action", "delete").Text("Delete").
					OnClick(func(ctx goapp.Context, e goapp.Event) { v.sess.Delete(v.Room, seq) }),
			)
		}),
	)
}

// editForm edits the text of a message of ours in place.
func (v *roomView) editForm(m proto.Message) goapp.UI {
	seq := m.Seq
	id := "edit-" + strconv.FormatUint(seq, 10)
	return goapp.Form().Class("edit-form").OnSubmit(func(ctx goapp.Context, e goapp.Event) {
		e.PreventDefault()
		text := strings.TrimSpace(ctx.JSSrc().Call("querySelector", "textarea").Get("value").String())
		if _, code := proto.NormalizeText(text); code != "" {
			v.err = errorCodeText(code, "")
			return
		}
		if utf8.RuneCountInString(text) > proto.TextMax {
			v.err = errorCodeText(proto.CodeTextTooLong, "")
			return
		}
		v.err, v.editing = "", 0
		if text != m.Text {
			v.sess.Edit(v.Room, seq, text)
		}
	}).Body(
		goapp.Label().Class("visually-hidden").For(id).Text("Edit your message"),
		goapp.Textarea().ID(id).Name("edit").Rows(2).Text(m.Text),
		goapp.Div().Class("msg-actions").Body(
			goapp.Button().Type("submit").DataSet("action", "save").Text("Save"),
			goapp.Button().Type("button").Class("secondary").Text("Cancel").
				OnClick(func(ctx goapp.Context, e goapp.Event) { v.editing = 0 }),
		),
	)
}

// toggleMute mutes or unmutes the room's notifications on this browser.
func (v *roomView) toggleMute(ctx goapp.Context, e goapp.Event) {
	v.muted = !v.muted
	localData{ctx.LocalStorage()}.setMuted(v.Room, v.muted)
}

// renderMembers shows a private room's members with a form to add one, and a way to leave
// any room that may be left (not general, not a dm).
func (v *roomView) renderMembers() goapp.UI {
	info := v.roomInfo()
	canLeave := info.Member && info.Kind != proto.RoomDM && info.Name != "general"
	return goapp.Div().Class("members").Body(
		goapp.If(info.Kind == proto.RoomPrivate && info.Member, func() goapp.UI {
			return goapp.Details().Body(
				goapp.Summary().Text(fmt.Sprintf("Members (%d)", len(info.Members))),
				goapp.Ul().Class("member-list").Body(
					goapp.Range(info.Members).Slice(func(i int) goapp.UI {
						return goapp.Li().DataSet("member", info.Members[i]).Text(info.Members[i])
					}),
				),
				goapp.Form().Class("add-member").OnSubmit(v.addMember).Body(
					goapp.Label().For("add-member").Text("Add someone"),
					goapp.Input().ID("add-member").Name("member").Type("text").Required(true).
						MaxLength(proto.UsernameMax).Attr("autocomplete", "off").Attr("autocapitalize", "none"),
					goapp.Button().Type("submit").Text("Add"),
				),
			)
		}),
		goapp.If(canLeave, func() goapp.UI {
			return goapp.Button().Type("button").Class("secondary").DataSet("action", "leave").Text("Leave").OnClick(v.leave)
		}),
		goapp.If(v.memberErr != "", func() goapp.UI {
			return goapp.P().Class("error").Role("alert").Text(v.memberErr)
		}),
	)
}

// addMember adds the named user to the private room.
func (v *roomView) addMember(ctx goapp.Context, e goapp.Event) {
	e.PreventDefault()
	form := ctx.JSSrc()
	name, ok := proto.NormalizeUsername(strings.TrimSpace(form.Call("querySelector", "input").Get("value").String()))
	if !ok {
		v.memberErr = errorCodeText(proto.CodeInvalidUsername, "")
		return
	}
	v.memberErr = ""
	sess, room := v.sess, v.Room
	ctx.Async(func() {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		err := sess.AddMember(rctx, room, name)
		var info proto.Room
		if err == nil {
			info, err = sess.Room(rctx, room)
		}
		ctx.Dispatch(func(ctx goapp.Context) {
			if err != nil {
				v.memberErr = errorText(err)
				return
			}
			form.Call("reset")
			v.setInfo(ctx, info)
		})
	})
}

// leave ends the user's membership of the room and goes back to the room list.
func (v *roomView) leave(ctx goapp.Context, e goapp.Event) {
	v.memberErr, v.leaving = "", true
	sess, room, me := v.sess, v.Room, v.me
	ctx.Async(func() {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		err := sess.RemoveMember(rctx, room, me)
		ctx.Dispatch(func(ctx goapp.Context) {
			if err != nil {
				v.memberErr, v.leaving = errorText(err), false
				return
			}
			ctx.Navigate(PathHome)
		})
	})
}

// pendingItem is a message of ours still in the outbox.
func pendingItem(p client.Pending, me string) goapp.UI {
	return goapp.Li().Class("msg mine pending").DataSet("pending", "true").DataSet("id", p.ID).Body(
		goapp.Div().Class("msg-meta").Body(
			goapp.Span().Class("from").Text(me),
			goapp.Span().Class("sending").Text("Sending…"),
		),
		goapp.P().Class("text").Text(p.Text),
	)
}

// failedItem is a send of ours that the server refused: it says why, and offers to send it
// again or to drop it. withRoom names its room, for lists of several rooms' sends.
func failedItem(sess *client.Session, p client.Pending, me string, withRoom bool) goapp.UI {
	var who goapp.UI = goapp.Span().Class("from").Text(me)
	if withRoom {
		who = goapp.A().Class("from").Href(PathRoomPrefix + p.Room).Text("#" + p.Room)
	}
	return goapp.Li().Class("msg mine pending failed").DataSet("pending", "true").DataSet("failed", "true").DataSet("id", p.ID).Body(
		goapp.Div().Class("msg-meta").Body(
			who,
			goapp.Span().Class("error").Text("Not sent: "+refusalText(p.Code)),
		),
		goapp.P().Class("text").Text(p.Text),
		goapp.Div().Class("msg-actions").Body(
			goapp.Button().Type("button").Class("secondary").DataSet("action", "retry").Text("Retry").
				OnClick(func(ctx goapp.Context, e goapp.Event) {
					if sess != nil {
						sess.Retry(p.ID)
					}
				}),
			goapp.Button().Type("button").Class("secondary").DataSet("action", "discard").Text("Discard").
				OnClick(func(ctx goapp.Context, e goapp.Event) {
					if sess != nil {
						sess.Discard(p.ID)
					}
				}),
		),
	)
}

// refusalText says why a send failed.
func refusalText(code string) string {
	switch code {
	case proto.CodeInvalidRoom, proto.CodeNotFound:
		return "the room does not exist, or is not open to you."
	case proto.CodeNotJoined:
		return "the room could not be joined."
	}
	return errorCodeText(code, "")
}

// statusLine is the page's one role="status" element: the connection state, and the offline
// banner.
func statusLine(st client.State) goapp.UI {
	text := map[client.State]string{
		client.StateConnected:    "Connected",
		client.StateReconnecting: "Reconnecting…",
		client.StateOffline:      "Offline. Showing saved messages; what you write is sent when the connection is back.",
	}[st]
	return goapp.P().Class("status status-"+string(st)).Role("status").DataSet("state", string(st)).Text(text)
}

// typingText says who is typing.
func typingText(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0] + " is typing…"
	case 2:
		return names[0] + " and " + names[1] + " are typing…"
	}
	return "Several people are typing…"
}
