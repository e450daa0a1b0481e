package app

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	goapp "github.com/maxence-charriere/go-app/v10/pkg/app"

	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// reconnectMax bounds the wait between attempts to reach the server: a person looking at an
// offline banner expects to be back soon after the server is.
const reconnectMax = 8 * time.Second

// Tab is what one browser tab shares between its pages: the one client session, which alone
// holds the access token, makes every API call that needs it and keeps one socket for every
// page, and the rooms' saved messages. wasm/main.go makes one and hands it to Routes, whose
// pages reach it through their route; the server's prerendering gets none (nil), and pages
// then show their neutral loading view.
//
// Its fields change only on the UI goroutine. The session's events reach it through a
// subscription of its own, which saves messages and the outbox to local storage and publishes
// who is signed in (stateAuth); pages subscribe to the session for what they show.
type Tab struct {
	mu    sync.Mutex
	ctx   *goapp.Context        // the context of the page shown now, guarded by mu
	queue []func(goapp.Context) // work for the UI goroutine, guarded by mu (see do)

	api     *client.API
	started bool
	sess    *client.Session // nil while nobody is signed in, or before the first page mounts
	stop    context.CancelFunc
	saved   map[string][]proto.Message // by room: the newest messages, as kept in local storage

	title   string              // the page's title, without the unread count (see setTitle)
	unread  int                 // the total unread count the title and the app badge show
	current string              // the room whose page is shown, "" on other pages
	online  map[string][]string // by room: who is online, from the last presence frame
	swallow goapp.Func          // the rejection handler of browser promises whose failure changes nothing

	snapshot string // the room list's snapshot kept in Cache Storage by this page (see snapshot.go)
}

// NewTab returns the tab's holder for the server that served the page. Nothing starts before
// the first page mounts.
func NewTab() *Tab {
	return &Tab{saved: map[string][]proto.Message{}}
}

// Session returns the tab's session, or nil while nobody is signed in.
func (t *Tab) Session() *client.Session {
	if t == nil {
		return nil
	}
	return t.sess
}

// attach makes ctx, the context of a page that has just mounted, the one the tab's work runs
// with, and runs what waited for a page. Every page calls it from OnMount (see observeAuth).
func (t *Tab) attach(ctx goapp.Context) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.ctx = &ctx
	t.mu.Unlock()
	t.drain(ctx)
}

// do runs f on the UI goroutine, with the context of the page shown now. It may be called from
// any goroutine. A context's Dispatch does nothing once its page is gone, and the tab outlives
// its pages: f waits in the queue until a page runs it, the next one to mount at the latest.
func (t *Tab) do(f func(goapp.Context)) {
	t.mu.Lock()
	t.queue = append(t.queue, f)
	ctx := t.ctx
	t.mu.Unlock()
	if ctx != nil {
		ctx.Dispatch(t.drain)
	}
}

// drain runs the queued work, on the UI goroutine.
func (t *Tab) drain(ctx goapp.Context) {
	t.mu.Lock()
	queue := t.queue
	t.queue = nil
	t.mu.Unlock()
	for _, f := range queue {
		f(ctx)
	}
}

// start runs once per load, from the first page's OnMount: it listens to the browser's
// network and visibility events and, when a refresh cookie may exist (see hasSessionHint),
// starts the session with a refresh. Without the hint nobody is signed in, and the app asks
// the server nothing: the refresh could only fail. The one exception is a browser that kept
// a user's data from before the server set hints.
func (t *Tab) start(ctx goapp.Context) {
	if t == nil || t.started {
		return
	}
	t.started = true
	t.api = newAPI()
	t.listen()
	t.listenWorker()
	// A browser signed in before the server set the hint has none yet, but keeps its user's
	// name: it refreshes once, and the answer sets the hint for the loads after.
	data := localData{ctx.LocalStorage()}
	if hasSessionHint() {
		data.setHinted()
	} else if data.hinted() || data.user() == "" {
		t.deleteSnapshot()
		ctx.SetState(stateAuth, auth{Status: authSignedOut})
		return
	}
	ctx.SetState(stateAuth, auth{Status: authChecking})
	t.startSession(ctx, nil)
}

// signIn starts a session with the token body of a sign-in or sign-up.
func (t *Tab) signIn(ctx goapp.Context, tb proto.TokenBody) {
	t.endSession()
	t.claim(ctx, tb.User.Name)
	t.saved = map[string][]proto.Message{}
	t.startSession(ctx, &tb)
	ctx.SetState(stateAuth, signedIn(tb))
}

// signOut ends the session on the server and here, and forgets what this browser kept of it.
// It blocks on the network: run it in ctx.Async. An error means the server could not be
// reached, and the session may still be alive there: nothing is forgotten then.
func (t *Tab) signOut(ctx goapp.Context) error {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	err := t.api.Logout(rctx)
	var apiErr *client.APIError
	if err != nil && !errors.As(err, &apiErr) {
		return err
	}
	ctx.Dispatch(func(ctx goapp.Context) {
		t.endSession()
		t.saved = map[string][]proto.Message{}
		localData{ctx.LocalStorage()}.clear()
		t.deleteSnapshot()
		ctx.SetState(stateAuth, auth{Status: authSignedOut})
	})
	return nil
}

// claim makes what this browser keeps the user's: another user's saved data and room list
// snapshot are removed first.
func (t *Tab) claim(ctx goapp.Context, user string) {
	data := localData{ctx.LocalStorage()}
	if data.user() != user {
		t.deleteSnapshot()
	}
	data.claim(user)
}

// startSession starts the session: from tb, or with a refresh when tb is nil. It joins every
// room this browser kept messages of, from the newest kept, and the rooms of the saved outbox,
// whose sends go out once their room is joined.
func (t *Tab) startSession(ctx goapp.Context, tb *proto.TokenBody) {
	data := localData{ctx.LocalStorage()}
	rooms := map[string]uint64{}
	for _, room := range data.rooms() {
		msgs := t.messages(ctx, room)
		if len(msgs) > 0 {
			rooms[room] = msgs[len(msgs)-1].Seq
		}
	}
	outbox := data.outbox()
	for _, p := range outbox {
		if _, ok := rooms[p.Room]; !ok {
			rooms[p.Room] = 0
		}
	}
	api := t.api
	sess := client.NewSession(api, client.Options{
		Token:       tb,
		Rooms:       rooms,
		Outbox:      outbox,
		MaxBackoff:  reconnectMax,
		MemberRooms: true,
		Refresh:     func(ctx context.Context) (proto.TokenBody, error) { return refresh(ctx, api) },
	})
	if !online() {
		sess.Offline()
	}
	sub := sess.Subscribe(client.Filter{Kinds: []client.EventKind{
		client.EventToken, client.EventLoginRequired, client.EventState, client.EventMessage, client.EventOutbox,
		client.EventUnread, client.EventRoom, client.EventRead, client.EventPresence,
	}})
	sctx, stop := context.WithCancel(context.Background())
	t.sess, t.stop = sess, stop
	t.online = map[string][]string{}
	go func() {
		for ev := range sub.C() {
			t.do(func(ctx goapp.Context) { t.apply(ctx, sess, ev) })
		}
	}()
	go sess.Run(sctx) // ends with EventLoginRequired when the session is over
}

// endSession stops the session, if one runs.
func (t *Tab) endSession() {
	if t.stop != nil {
		t.stop()
	}
	t.sess, t.stop = nil, nil
	t.unread = 0
}

// apply handles one event of the tab's own subscription, on the UI goroutine.
func (t *Tab) apply(ctx goapp.Context, sess *client.Session, ev client.Event) {
	if sess != t.sess {
		return // an event of a session that has ended since
	}
	data := localData{ctx.LocalStorage()}
	switch ev.Kind {
	case client.EventToken:
		if prev := data.user(); prev != "" && prev != ev.Token.User.Name {
			// What this browser kept is another user's: it is not this session's to send.
			for _, p := range sess.Outbox() {
				sess.Discard(p.ID)
			}
			t.saved = map[string][]proto.Message{}
		}
		t.claim(ctx, ev.Token.User.Name)
		ctx.SetState(stateAuth, signedIn(ev.Token))
	case client.EventLoginRequired:
		t.endSession()
		t.deleteSnapshot()
		ctx.SetState(stateAuth, auth{Status: authSignedOut})
	case client.EventState:
		if ev.State != client.StateConnected {
			clear(t.online) // the server sends the lists again on the next joins
		}
		if ev.State == client.StateOffline && sess.AccessToken() == "" {
			// The server cannot be reached to find out who is signed in.
			ctx.SetState(stateAuth, auth{Status: authOffline})
		}
	case client.EventMessage:
		msgs := mergeMessages(t.messages(ctx, ev.Room), []proto.Message{ev.Message})
		t.saved[ev.Room] = msgs[max(len(msgs)-keptMessages, 0):]
		data.saveMessages(ev.Room, msgs)
		t.notify(ctx, sess, ev.Message)
	case client.EventOutbox:
		data.setOutbox(ev.Outbox)
	case client.EventPresence:
		// A room's page shows it from when it opens: the session joined the room earlier.
		t.online[ev.Room] = ev.Online
	case client.EventUnread, client.EventRoom, client.EventRead:
		t.showUnread(ctx, sess)
	}
}

// setTitle sets the document's title, led by the total unread count, "(3) ", when there is
// one. Pages call it instead of setting the title themselves.
func (t *Tab) setTitle(ctx goapp.Context, title string) {
	if t == nil {
		ctx.Page().SetTitle("%s", title)
		return
	}
	t.title = title
	if t.unread > 0 {
		title = "(" + countText(t.unread) + ") " + title
	}
	ctx.Page().SetTitle("%s", title)
}

// showUnread shows the session's total unread count in the title and on the installed app's
// badge, where the browser has one.
func (t *Tab) showUnread(ctx goapp.Context, sess *client.Session) {
	total, _ := sess.UnreadTotal()
	if total == t.unread {
		return
	}
	t.unread = total
	if t.title != "" {
		t.setTitle(ctx, t.title)
	}
	nav := goapp.Window().Get("navigator")
	if !nav.Get("setAppBadge").Truthy() {
		return
	}
	var p goapp.Value
	if total > 0 {
		p = nav.Call("setAppBadge", total)
	} else {
		p = nav.Call("clearAppBadge")
	}
	if p.Truthy() {
		p.Call("catch", t.ignore())
	}
}

// ignore returns the rejection handler of browser promises whose failure changes nothing.
func (t *Tab) ignore() goapp.Func {
	if t.swallow == nil {
		t.swallow = goapp.FuncOf(func(goapp.Value, []goapp.Value) any { return nil })
	}
	return t.swallow
}

// countText shows a count, "999+" from proto.UnreadMax on.
func countText(n int) string {
	if n >= proto.UnreadMax {
		return "999+"
	}
	return strconv.Itoa(n)
}

// messages returns the room's saved messages, ascending by seq.
func (t *Tab) messages(ctx goapp.Context, room string) []proto.Message {
	msgs, ok := t.saved[room]
	if !ok {
		msgs = localData{ctx.LocalStorage()}.messages(room)
		t.saved[room] = msgs
	}
	return msgs
}

// remember keeps a room's messages shown by a page, such as a page of history, for the next
// visit and for offline use.
func (t *Tab) remember(ctx goapp.Context, room string, msgs []proto.Message) {
	merged := mergeMessages(t.messages(ctx, room), msgs)
	t.saved[room] = merged[max(len(merged)-keptMessages, 0):]
	localData{ctx.LocalStorage()}.saveMessages(room, merged)
}

// listen passes the browser's hints to the session: the network went away or came back, and
// the tab became visible again, when timers held back in a hidden or sleeping tab may be late.
// The listeners live as long as the page.
func (t *Tab) listen() {
	on := func(target goapp.Value, event string, f func(s *client.Session)) {
		target.Call("addEventListener", event, goapp.FuncOf(func(this goapp.Value, args []goapp.Value) any {
			t.do(func(goapp.Context) {
				if s := t.sess; s != nil {
					f(s)
				}
			})
			return nil
		}))
	}
	win := goapp.Window()
	doc := win.Get("document")
	on(win, "offline", (*client.Session).Offline)
	on(win, "online", (*client.Session).Online)
	on(doc, "visibilitychange", func(s *client.Session) {
		if doc.Get("visibilityState").String() != "hidden" {
			s.CheckNow()
		}
	})
}

// online reports whether the browser believes it has a network.
func online() bool {
	return goapp.Window().Get("navigator").Get("onLine").Bool()
}

// hasSessionHint reports whether the server's kaiwa_session cookie is there, which it sets
// and clears with the refresh cookie (proto.SessionHintCookie): without it, a refresh can
// only fail.
func hasSessionHint() bool {
	for c := range strings.SplitSeq(goapp.Window().Get("document").Get("cookie").String(), ";") {
		if name, _, _ := strings.Cut(strings.TrimSpace(c), "="); name == proto.SessionHintCookie {
			return true
		}
	}
	return false
}
