package browser_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"kaiwa/server"
	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

// restartable is a whole Kaiwa on a fixed loopback address that can be stopped and started
// again over the same database file, so that a browser's origin (and its service worker and
// local storage) stays the same across the restart.
type restartable struct {
	t      *testing.T
	addr   string
	dbPath string
	st     *store.Store
	srv    *server.Server
	hs     *http.Server
}

func startRestartable(t *testing.T, accessTTL time.Duration) *restartable {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k := &restartable{t: t, addr: l.Addr().String(), dbPath: filepath.Join(t.TempDir(), "kaiwa.db")}
	k.serve(l, accessTTL)
	t.Cleanup(k.stop)
	return k
}

func (k *restartable) URL() string { return "http://" + k.addr }

func (k *restartable) serve(l net.Listener, accessTTL time.Duration) {
	k.t.Helper()
	logger := slog.New(slog.NewTextHandler(k.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := store.Open(k.dbPath)
	if err != nil {
		k.t.Fatal(err)
	}
	srv, err := server.New(server.Config{
		AccessTTL:     accessTTL,
		RefreshTTL:    720 * time.Hour,
		Registration:  true,
		SecureCookies: "never",
	}, st, logger)
	if err != nil {
		k.t.Fatal(err)
	}
	k.st, k.srv = st, srv
	k.hs = &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go k.hs.Serve(l)
}

// stop closes every socket, the listener and the database, as `kaiwa serve` does on SIGTERM:
// requests in flight are answered first. (Cutting one off could lose a refresh's answer after
// its rotation is stored; presented again after the 10 s grace, the old token would then revoke
// the session, as SPEC requires, and the test would see a sign-out it did not cause.)
func (k *restartable) stop() {
	if k.hs == nil {
		return
	}
	k.srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := k.hs.Shutdown(ctx); err != nil {
		k.hs.Close()
	}
	k.st.Close()
	k.hs = nil
}

// restart serves again on the same address and database.
func (k *restartable) restart(accessTTL time.Duration) {
	k.t.Helper()
	var l net.Listener
	var err error
	for range 50 { // the old listener's port may take a moment to be free
		if l, err = net.Listen("tcp", k.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		k.t.Fatalf("listen again on %s: %v", k.addr, err)
	}
	k.serve(l, accessTTL)
}

// waitJS polls a JavaScript expression in the page until it is true.
func waitJS(t *testing.T, b *browser, what, expr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(`+expr+`)`))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (%s; last error %v)", what, timeout, expr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clickUntil clicks the button matching button until done (a JavaScript expression) holds, at
// most once every 2 s. A page that has just loaded may replace a button while the app starts, and
// a click on the replaced one does nothing: as a person would, the test clicks again.
func clickUntil(t *testing.T, b *browser, what, button, done string, timeout time.Duration) {
	t.Helper()
	waitJS(t, b, what, `(() => {
		if (`+done+`) return true;
		const el = document.querySelector(`+strconv.Quote(button)+`);
		const now = Date.now();
		if (el && !(window.__kaiwaClickedAt > now - 2000)) { window.__kaiwaClickedAt = now; el.click(); }
		return false;
	})()`, timeout)
}

// register signs up through /register.
func register(t *testing.T, b *browser, base, name string) {
	t.Helper()
	b.do(t, "register "+name,
		chromedp.Navigate(base+"/register"),
		chromedp.WaitVisible(chromedp.CSS(`form[data-view="register"] input[name="username"]`)),
		chromedp.SendKeys(chromedp.CSS(`form[data-view="register"] input[name="username"]`), name),
		chromedp.SendKeys(chromedp.CSS(`form[data-view="register"] input[name="password"]`), "password-"+name),
		chromedp.Click(chromedp.CSS(`form[data-view="register"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-view="home"] [data-user="`+name+`"]`)),
	)
}

// Expressions about the room view.
const (
	statusState = `document.querySelector('[role="status"]')?.dataset.state`
	connected   = statusState + ` === "connected"`
	// roomLog lists the delivered messages: seq, id and text.
	roomLog = `[...document.querySelectorAll('[role="log"] [data-seq]')].map((el) => ({seq: +el.dataset.seq, id: el.dataset.id, text: el.querySelector('.text').textContent}))`
)

type shownMessage struct {
	Seq  uint64 `json:"seq"`
	ID   string `json:"id"`
	Text string `json:"text"`
}

// shown returns the delivered messages in the log, in document order.
func shown(t *testing.T, b *browser) []shownMessage {
	t.Helper()
	return eval[[]shownMessage](t, b, roomLog)
}

// checkOnce checks that the log shows seq 1..n, each once, in order, with distinct ids.
func checkOnce(t *testing.T, who string, msgs []shownMessage, n int) {
	t.Helper()
	ids := map[string]bool{}
	for i, m := range msgs {
		if m.Seq != uint64(i+1) {
			t.Fatalf("%s: message %d of the log has seq %d: lost, doubled or out of order (%d shown, want %d)", who, i, m.Seq, len(msgs), n)
		}
		if m.ID == "" || ids[m.ID] {
			t.Fatalf("%s: seq %d has id %q, empty or shown before", who, m.Seq, m.ID)
		}
		ids[m.ID] = true
	}
	if len(msgs) != n {
		t.Fatalf("%s: %d messages shown, want %d", who, len(msgs), n)
	}
}

// send writes text in the composer and presses Enter.
func send(t *testing.T, b *browser, text string) {
	t.Helper()
	b.do(t, "send "+text,
		chromedp.SendKeys(chromedp.CSS(`form.composer textarea[name="message"]`), text+kb.Enter),
	)
}

// TestBrowserRoom runs two people in two Chromium profiles through a room: chatting across
// several access-token rotations, a reload, a server that goes away and comes back over the
// same database, and a message written offline that arrives once.
func TestBrowserRoom(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	const ttl = 5 * time.Second
	k := startRestartable(t, ttl)
	alice, bob := newBrowser(t, chromium), newBrowser(t, chromium)
	register(t, alice, k.URL(), "alice")
	register(t, bob, k.URL(), "bob")
	room := k.URL() + "/rooms/general"
	for _, b := range []*browser{alice, bob} {
		b.do(t, "open the room", chromedp.Navigate(room), chromedp.WaitVisible(chromedp.CSS(`[role="log"]`)))
		waitJS(t, b, "connected", connected, 30*time.Second)
	}
	if n := eval[int](t, alice, `document.querySelectorAll('[role="status"]').length`); n != 1 {
		t.Errorf("%d elements with role=status, want exactly one", n)
	}
	// Who is online, and who is typing: bob types without sending, alice sees it.
	for _, b := range []*browser{alice, bob} {
		waitJS(t, b, "both online", `[...document.querySelectorAll('.presence li')].map((li) => li.textContent).join(",") === "alice,bob"`, 30*time.Second)
	}
	bob.do(t, "type", chromedp.SendKeys(chromedp.CSS(`form.composer textarea[name="message"]`), "thinking"))
	waitJS(t, alice, "bob is typing", `document.querySelector('.typing').textContent === "bob is typing…"`, 30*time.Second)
	if got := eval[string](t, bob, `document.querySelector('.typing').textContent`); got != "" {
		t.Errorf("bob sees his own typing: %q", got)
	}
	eval[bool](t, bob, `(() => { const ta = document.querySelector('form.composer textarea[name="message"]'); ta.value = ""; ta.dispatchEvent(new Event("input", {bubbles: true})); return true })()`)

	// Chat for longer than four token lifetimes: each session refreshes and replaces its
	// socket several times meanwhile.
	const evil = `<img src=x onerror="document.title='pwned'">`
	start := time.Now()
	sent := 0
	for i := 0; time.Since(start) < 4*ttl+2*time.Second; i++ {
		text := fmt.Sprintf("alice %d", i)
		if i == 3 {
			text = evil
		}
		send(t, alice, text)
		send(t, bob, fmt.Sprintf("bob %d", i))
		sent += 2
		time.Sleep(600 * time.Millisecond)
	}
	for _, c := range []struct {
		name string
		b    *browser
	}{{"alice", alice}, {"bob", bob}} {
		waitJS(t, c.b, c.name+" sees every message",
			`document.querySelectorAll('[role="log"] [data-seq]').length >= `+strconv.Itoa(sent)+
				` && !document.querySelector('[data-pending]')`, 30*time.Second)
		checkOnce(t, c.name, shown(t, c.b), sent)
		waitJS(t, c.b, c.name+" connected after the chat", connected, 15*time.Second)
	}
	// User text stays text.
	if !eval[bool](t, bob, `[...document.querySelectorAll('[role="log"] .text')].some((el) => el.textContent === `+strconv.Quote(evil)+`)`) {
		t.Error("the message with markup is not shown as its characters")
	}
	if eval[bool](t, bob, `document.querySelector('[role="log"] img') !== null || document.title === "pwned"`) {
		t.Error("a message became markup")
	}

	// A reload keeps the session, without the login form, and shows each message once.
	b := bob
	b.do(t, "reload the room", watchNewDocuments(), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`[role="log"] [data-seq]`)))
	waitJS(t, b, "connected after the reload", connected, 30*time.Second)
	if eval[bool](t, b, `window.__kaiwaPasswordSeen`) {
		t.Error("the login form appeared when a signed-in user reloaded the room")
	}
	checkOnce(t, "bob after the reload", shown(t, b), sent)

	// Scroll-back: a room with more history than one page shows the newest page, and the rest
	// on request.
	if _, err := k.st.CreateRoom("archive"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 60; i++ {
		if _, _, err := k.st.Append("archive", "u-carol", "carol", fmt.Sprint("archive-", i), fmt.Sprint("old ", i)); err != nil {
			t.Fatal(err)
		}
	}
	b.do(t, "open a long room", chromedp.Navigate(k.URL()+"/rooms/archive"), chromedp.WaitVisible(chromedp.CSS(`[role="log"] [data-seq="60"]`)))
	if msgs := shown(t, b); len(msgs) != 50 || msgs[0].Seq != 11 {
		t.Errorf("a long room first shows %d messages from seq %d, want the newest 50", len(msgs), msgs[0].Seq)
	}
	b.do(t, "load older messages", chromedp.Click(chromedp.CSS(`[role="log"] .older button`)), chromedp.WaitVisible(chromedp.CSS(`[role="log"] [data-seq="1"]`)))
	checkOnce(t, "bob in the long room", shown(t, b), 60)
	if eval[bool](t, b, `document.querySelector('[role="log"] .older') !== null`) {
		t.Error("the log still offers older messages after the first one")
	}
	b.do(t, "back to general", chromedp.Navigate(room), chromedp.WaitVisible(chromedp.CSS(`[role="log"] [data-seq]`)))
	waitJS(t, b, "connected in general again", connected, 30*time.Second)

	if os.Getenv("KAIWA_SCREENSHOT") != "" {
		writeScreenshot(t, alice)
	}

	// The server goes away.
	for _, b := range []*browser{alice, bob} {
		eval[bool](t, b, `navigator.serviceWorker.ready.then(() => true)`)
	}
	k.stop()
	waitJS(t, alice, "status leaves connected", statusState+` !== "connected"`, 15*time.Second)
	const offline = "written while the server was away"
	send(t, alice, offline)
	waitJS(t, alice, "the offline message is pending", `[...document.querySelectorAll('[data-pending]')].some((el) => el.textContent.includes(`+strconv.Quote(offline)+`))`, 30*time.Second)

	// Offline, a reload comes from the service worker and shows the saved history and outbox.
	alice.do(t, "reload offline", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`[role="log"] [data-seq]`)))
	waitJS(t, alice, "offline banner", statusState+` === "offline"`, 20*time.Second)
	if got := len(shown(t, alice)); got != sent {
		t.Errorf("offline after a reload the log shows %d saved messages, want %d", got, sent)
	}
	if !eval[bool](t, alice, `[...document.querySelectorAll('[data-pending]')].some((el) => el.textContent.includes(`+strconv.Quote(offline)+`))`) {
		t.Error("the offline message is not pending after the reload")
	}

	// Offline, "/" cannot check the session, but links to the rooms kept on this device, and
	// such a room opens from what was saved.
	bob.do(t, "open / offline", chromedp.Navigate(k.URL()+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-view="offline"] li[data-room="general"] a[href="/rooms/general"]`)),
		chromedp.Click(chromedp.CSS(`[data-view="offline"] li[data-room="general"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`[role="log"] [data-seq]`)))
	waitJS(t, bob, "bob's room offline", statusState+` === "offline"`, 20*time.Second)

	// bob writes offline too, then leaves for "/": his message must go out from there once the
	// server is back, without its room open.
	const fromHome = "written offline by bob, who then left the room"
	send(t, bob, fromHome)
	waitJS(t, bob, "bob's offline message is pending", `[...document.querySelectorAll('[data-pending]')].some((el) => el.textContent.includes(`+strconv.Quote(fromHome)+`))`, 30*time.Second)
	bob.do(t, "leave the room offline", chromedp.Navigate(k.URL()+"/"), chromedp.WaitVisible(chromedp.CSS(`[data-view="offline"]`)))

	// Back: each outbox goes out once, and both see each message once.
	k.restart(ttl)
	clickUntil(t, bob, "try again on /", `[data-view="offline"] button`,
		`document.querySelector('[data-view="home"] [data-user="bob"]')`, 60*time.Second)
	waitJS(t, bob, "bob's outbox sent from /", `JSON.parse(localStorage.getItem("kaiwa.outbox") || "[]").length === 0`, 30*time.Second)
	bob.do(t, "reopen the room", chromedp.Navigate(room), chromedp.WaitVisible(chromedp.CSS(`[role="log"] [data-seq]`)))
	for _, c := range []struct {
		name string
		b    *browser
	}{{"alice", alice}, {"bob", bob}} {
		waitJS(t, c.b, c.name+" sees the offline messages",
			`document.querySelectorAll('[role="log"] [data-seq]').length >= `+strconv.Itoa(sent+2)+` && !document.querySelector('[data-pending]')`, 30*time.Second)
		msgs := shown(t, c.b)
		checkOnce(t, c.name+" after the restart", msgs, sent+2)
		last := []string{msgs[len(msgs)-2].Text, msgs[len(msgs)-1].Text}
		if !slices.Contains(last, offline) || !slices.Contains(last, fromHome) {
			t.Errorf("%s: the last messages are %q, want the two written offline", c.name, last)
		}
	}
	stored, _, err := k.st.Page("general", nil, new(uint64), proto.PageMax)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, m := range stored {
		counts[m.Text]++
	}
	if counts[offline] != 1 || counts[fromHome] != 1 || len(stored) != sent+2 {
		t.Errorf("the server stored the offline messages %d and %d times and %d messages, want once each and %d",
			counts[offline], counts[fromHome], len(stored), sent+2)
	}
	if strings.Contains(eval[string](t, alice, `JSON.stringify(Object.assign({}, localStorage))`), "eyJ") {
		t.Error("a token is in local storage")
	}

	// Signing out takes the saved rooms and outbox with it.
	if !eval[bool](t, alice, `Object.keys(localStorage).some((k) => k.startsWith("kaiwa.room."))`) {
		t.Fatal("nothing saved of the room: the check below could not fail")
	}
	alice.do(t, "open / to sign out", chromedp.Navigate(k.URL()+"/"),
		chromedp.WaitVisible(chromedp.CSS(`button[data-action="logout"]`)))
	clickUntil(t, alice, "sign out", `button[data-action="logout"]`,
		`document.querySelector('form[data-view="login"] input[name="password"]')`, 60*time.Second)
	if keys := eval[[]string](t, alice, `Object.keys(localStorage).filter((k) => k.startsWith("kaiwa."))`); len(keys) > 0 {
		t.Errorf("after signing out local storage still holds %v", keys)
	}
}

// writeScreenshot saves the room as people see it, for the README.
func writeScreenshot(t *testing.T, b *browser) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.EmulateViewport(1000, 700)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // one layout after the resize
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("..", "testdata", "screenshot-room.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
