package app

import (
	"context"
	"slices"
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
	// reconnectMax bounds the wait between attempts to reach the server: a person looking at
	// an offline banner expects to be back soon after the server is.
	reconnectMax = 8 * time.Second
)

// roomView is a room's conversation: history with scroll-back, live messages, who is online and
// typing, the connection state and the composer. It runs its own client session for as long as
// it is mounted. The session starts with a refresh through the cookie, so the view works the
// same after a reload, and shows the room's saved messages and outbox while the server cannot
// be reached.
type roomView struct {
	goapp.Compo

	Room string

	me        string          // the signed-in user, or the one the saved data belongs to
	msgs      []proto.Message // delivered, ascending by seq, each seq once
	pending   []client.Pending
	state     client.State
	online    []string
	typing    map[string]time.Time // user → until when to show them typing
	joined    bool                 // the session has been asked to join the room
	history   bool                 // the newest page has been read from the server
	older     bool                 // a page of older messages is being read
	err       string
	lastTyped time.Time

	sess    *client.Session
	api     *client.API
	stop    context.CancelFunc
	release []func()
}

// newSession returns a client session over api whose refreshes go through the lock that every
// tab of the app shares (see refresh), reconnecting at most reconnectMax apart.
func newSession(api *client.API) *client.Session {
	return client.NewSession(api, client.Options{
		Refresh:    func(ctx context.Context) (proto.TokenBody, error) { return refresh(ctx, api) },
		MaxBackoff: reconnectMax,
	})
}

// CompoID makes go-app mount a new view, with its own session, for another room.
func (v *roomView) CompoID() string { return v.Room }

func (v *roomView) OnMount(ctx goapp.Context) {
	data := localData{ctx.LocalStorage()}
	v.me = data.user()
	v.msgs = data.messages(v.Room)
	v.state = client.StateReconnecting
	v.typing = map[string]time.Time{}
	v.api = newAPI()
	v.sess = newSession(v.api)
	for _, p := range data.outbox() {
		if p.Room == v.Room {
			v.pending = append(v.pending, p)
			v.sess.SendWithID(p.Room, p.ID, p.Text)
		}
	}
	if len(v.msgs) > 0 {
		// Resume from what this browser saw: the server replays what came since.
		v.join(v.msgs[len(v.msgs)-1].Seq)
	}

	sctx, stop := context.WithCancel(context.Background())
	v.stop = stop
	sess := v.sess
	ctx.Async(func() { sess.Run(sctx) })
	ctx.Async(func() {
		for {
			select {
			case <-sctx.Done():
				return
			case ev := <-sess.Events():
				ctx.Dispatch(func(ctx goapp.Context) { v.apply(ctx, ev) })
			}
		}
	})
	// Timers are held back in hidden tabs and stop during sleep: look again at once. The
	// handlers run on the page's event loop, which must never wait for the session.
	check := goapp.FuncOf(func(this goapp.Value, args []goapp.Value) any {
		if this.Get("visibilityState").String() != "hidden" {
			go sess.CheckNow()
		}
		return nil
	})
	online := goapp.FuncOf(func(this goapp.Value, args []goapp.Value) any {
		go sess.CheckNow()
		return nil
	})
	doc := goapp.Window().Get("document")
	doc.Call("addEventListener", "visibilitychange", check)
	goapp.Window().Call("addEventListener", "online", online)
	v.release = append(v.release, func() {
		doc.Call("removeEventListener", "visibilitychange", check)
		goapp.Window().Call("removeEventListener", "online", online)
		check.Release()
		online.Release()
	})
}

func (v *roomView) OnDismount() {
	if v.stop != nil {
		v.stop()
	}
	for _, f := range v.release {
		f()
	}
	v.release = nil
}

// join asks the session for the room's messages above after.
func (v *roomView) join(after uint64) {
	if !v.joined {
		v.joined = true
		v.sess.JoinAfter(v.Room, after)
	}
}

// apply handles one session event on the UI goroutine.
func (v *roomView) apply(ctx goapp.Context, ev client.Event) {
	data := localData{ctx.LocalStorage()}
	switch ev.Kind {
	case client.EventToken:
		v.me = ev.Token.User.Name
		data.claim(v.me)
		ctx.SetState(stateAuth, signedIn(ev.Token))
		if !v.history {
			v.loadHistory(ctx)
		}
	case client.EventLoginRequired:
		ctx.SetState(stateAuth, auth{Status: authSignedOut})
	case client.EventState:
		v.state = ev.State
		if ev.State == client.StateConnected && !v.history {
			v.loadHistory(ctx)
		}
	case client.EventMessage:
		if ev.Room != v.Room {
			return
		}
		v.deliver(ctx, []proto.Message{ev.Message})
		delete(v.typing, ev.Message.From)
	case client.EventAck:
		if ev.Room != v.Room {
			return
		}
		// The ack can come before the broadcast of the same message: show it delivered now.
		i := slices.IndexFunc(v.pending, func(p client.Pending) bool { return p.ID == ev.ID })
		if i >= 0 {
			p := v.pending[i]
			v.deliver(ctx, []proto.Message{{Room: p.Room, Seq: ev.Seq, ID: p.ID, From: v.me, Text: p.Text, TS: time.Now()}})
		}
		data.removePending(ev.ID)
	case client.EventPresence:
		if ev.Room == v.Room {
			v.online = ev.Online
		}
	case client.EventTyping:
		if ev.Room == v.Room && ev.User != v.me {
			v.typing[ev.User] = time.Now().Add(typingShown)
			ctx.After(typingShown, func(ctx goapp.Context) {}) // render again when it expires
		}
	case client.EventError:
		if ev.Room == "" || ev.Room == v.Room {
			v.err = errorCodeText(ev.Code, ev.Text)
		}
	}
}

// deliver adds delivered messages, drops their pending copies and saves the room.
func (v *roomView) deliver(ctx goapp.Context, msgs []proto.Message) {
	atBottom := v.nearBottom()
	v.msgs = mergeMessages(v.msgs, msgs)
	for _, m := range msgs {
		v.pending = slices.DeleteFunc(v.pending, func(p client.Pending) bool { return p.ID == m.ID })
	}
	localData{ctx.LocalStorage()}.saveMessages(v.Room, v.msgs)
	if atBottom {
		ctx.Defer(func(goapp.Context) { v.scrollToBottom() })
	}
}

// loadHistory reads the newest page of the room, then joins from its last seq. With saved
// messages the session has joined already, from the newest saved one, so that the server's
// replay fills whatever lies between them and this page: the view never shows a hole.
func (v *roomView) loadHistory(ctx goapp.Context) {
	token, api, room := v.sess.AccessToken(), v.api, v.Room
	if token == "" {
		return
	}
	v.history = true
	ctx.Async(func() {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		page, err := api.Messages(rctx, token, room, client.PageQuery{Limit: pageSize})
		ctx.Dispatch(func(ctx goapp.Context) {
			if err != nil {
				if client.IsCode(err, proto.CodeNotFound) {
					v.err = "This room does not exist."
					return
				}
				// Again soon, or at the next token: until then the room is not joined
				// unless saved messages joined it.
				v.history = false
				ctx.After(2*time.Second, func(ctx goapp.Context) {
					if !v.history {
						v.loadHistory(ctx)
					}
				})
				return
			}
			v.deliver(ctx, page.Messages)
			var last uint64
			if len(v.msgs) > 0 {
				last = v.msgs[len(v.msgs)-1].Seq
			}
			v.join(last)
			ctx.Defer(func(goapp.Context) { v.scrollToBottom() })
		})
	})
}

// loadOlder reads the page of messages just before the oldest one shown.
func (v *roomView) loadOlder(ctx goapp.Context, e goapp.Event) {
	if v.older || len(v.msgs) == 0 {
		return
	}
	token, api, room, before := v.sess.AccessToken(), v.api, v.Room, v.msgs[0].Seq
	v.older = true
	ctx.Async(func() {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		page, err := api.Messages(rctx, token, room, client.PageQuery{Before: before, Limit: pageSize})
		ctx.Dispatch(func(ctx goapp.Context) {
			v.older = false
			if err != nil {
				v.err = errorText(err)
				return
			}
			v.msgs = mergeMessages(page.Messages, v.msgs)
		})
	})
}

// hasOlder reports whether messages exist before the oldest shown: seq counts from 1 without
// gaps.
func (v *roomView) hasOlder() bool {
	return len(v.msgs) > 0 && v.msgs[0].Seq > 1
}

func (v *roomView) submit(ctx goapp.Context, e goapp.Event) {
	e.PreventDefault()
	v.send(ctx)
}

// keyDown sends on Enter; Shift+Enter starts a new line.
func (v *roomView) keyDown(ctx goapp.Context, e goapp.Event) {
	if e.Get("key").String() == "Enter" && !e.Get("shiftKey").Bool() && !e.Get("isComposing").Bool() {
		e.PreventDefault()
		v.send(ctx)
	}
}

func (v *roomView) input(ctx goapp.Context, e goapp.Event) {
	if now := time.Now(); now.Sub(v.lastTyped) >= typingEvery && v.sess != nil {
		v.lastTyped = now
		v.sess.Typing(v.Room)
	}
	ctx.PreventUpdate()
}

// send queues the composer's text: it shows pending at once, is saved in the outbox until its
// ack, and is sent whenever the session is connected.
func (v *roomView) send(ctx goapp.Context) {
	field := goapp.Window().GetElementByID(composerID)
	text := strings.TrimSpace(field.Get("value").String())
	if text == "" {
		return
	}
	if n := utf8.RuneCountInString(text); n > proto.TextMax {
		v.err = errorCodeText(proto.CodeTextTooLong, "")
		return
	}
	v.err = ""
	p := client.Pending{Room: v.Room, ID: client.NewID(), Text: text}
	localData{ctx.LocalStorage()}.addPending(p)
	v.pending = append(v.pending, p)
	v.sess.SendWithID(p.Room, p.ID, p.Text)
	field.Set("value", "")
	ctx.Defer(func(goapp.Context) { v.scrollToBottom() })
}

// Element ids of the room view.
const (
	logID      = "room-log"
	composerID = "room-message"
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
	return goapp.Section().Class("room").DataSet("view", "room").DataSet("room", v.Room).Aria("labelledby", "room-title").Body(
		goapp.Div().Class("room-head").Body(
			goapp.H1().ID("room-title").Text("#"+v.Room),
			statusLine(v.state),
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
			),
		),
		goapp.P().Class("typing").Aria("live", "polite").Text(typingText(v.typingNames(time.Now()))),
		goapp.If(v.err != "", func() goapp.UI {
			return goapp.P().Class("error").Role("alert").Text(v.err)
		}),
		goapp.Form().Class("composer").Aria("label", "Write a message").OnSubmit(v.submit).Body(
			goapp.Label().For(composerID).Class("visually-hidden").Text("Message"),
			goapp.Textarea().
				ID(composerID).
				Name("message").
				Rows(2).
				Placeholder("Message #"+v.Room+" (Enter sends, Shift+Enter for a new line)").
				Attr("autocomplete", "off").
				OnKeyDown(v.keyDown).
				OnInput(v.input),
			goapp.Button().Type("submit").Text("Send"),
		),
		goapp.P().Class("room-nav").Body(goapp.A().Href(PathHome).Text("All rooms")),
	)
}

func (v *roomView) renderLog() goapp.UI {
	me := v.me
	return goapp.Ol().ID(logID).Class("log").Role("log").Aria("label", "Messages").TabIndex(0).Body(
		goapp.If(v.hasOlder(), func() goapp.UI {
			return goapp.Li().Class("older").Body(
				goapp.Button().Type("button").Class("secondary").Disabled(v.older).Text("Load older messages").OnClick(v.loadOlder),
			)
		}),
		goapp.Range(v.msgs).Slice(func(i int) goapp.UI {
			return messageItem(v.msgs[i], me)
		}),
		goapp.Range(v.pending).Slice(func(i int) goapp.UI {
			return pendingItem(v.pending[i], me)
		}),
	)
}

// messageItem is a delivered message. Its text is a text node: never markup.
func messageItem(m proto.Message, me string) goapp.UI {
	class := "msg"
	if m.From == me {
		class += " mine"
	}
	return goapp.Li().Class(class).DataSet("seq", m.Seq).DataSet("id", m.ID).Body(
		goapp.Div().Class("msg-meta").Body(
			goapp.Span().Class("from").Text(m.From),
			goapp.Time().DateTime("%s", m.TS.Format(time.RFC3339)).Text(m.TS.Local().Format("15:04")),
		),
		goapp.P().Class("text").Text(m.Text),
	)
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
