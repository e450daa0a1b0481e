package browser_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"kaiwa/server"
	"kaiwa/server/servertest"
	"kaiwa/server/store"
)

// countingKaiwa is a whole Kaiwa behind a handler that counts the requests of each path, so a
// test can tell how many sockets and refreshes the app asked for.
type countingKaiwa struct {
	URL   string
	Store *store.Store

	mu    sync.Mutex
	paths map[string]int
}

func startCountingKaiwa(t *testing.T) *countingKaiwa {
	t.Helper()
	s := servertest.Start(t, server.Config{
		AccessTTL:     10 * time.Minute,
		RefreshTTL:    720 * time.Hour,
		Registration:  true,
		SecureCookies: "never",
	}, nil)
	k := &countingKaiwa{Store: s.Store, paths: map[string]int{}}
	inner := s.Kaiwa.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.mu.Lock()
		k.paths[r.URL.Path]++
		k.mu.Unlock()
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	k.URL = ts.URL
	return k
}

// count returns how many requests for path arrived so far.
func (k *countingKaiwa) count(path string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.paths[path]
}

// reset forgets the counts so far.
func (k *countingKaiwa) reset() {
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.paths)
}

// pollJS reports whether a JavaScript expression becomes true within timeout.
func pollJS(b *browser, expr string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(`+expr+`)`))
		cancel()
		if err == nil && ok {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// composer is the room's message field.
const composer = `form.composer textarea[name="message"]`

// setComposer puts text in the composer as typing would, in one step (typing thousands of
// characters through the protocol takes minutes), and focuses it.
func setComposer(t *testing.T, b *browser, text string) {
	t.Helper()
	eval[bool](t, b, `(() => { const ta = document.querySelector('`+composer+`'); ta.focus(); ta.value = `+strconv.Quote(text)+`; ta.dispatchEvent(new Event("input", {bubbles: true})); return true })()`)
}

// TestBrowserOneSessionPerTab walks from the room list through three rooms and back, by the
// app's own links: the tab keeps one socket and one session the whole way.
func TestBrowserOneSessionPerTab(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	k := startCountingKaiwa(t)
	for _, name := range []string{"alpha", "beta", "gamma"} {
		if _, err := k.Store.CreateRoom(name); err != nil {
			t.Fatal(err)
		}
	}
	b := newBrowser(t, chromium)
	register(t, b, k.URL, "walker")
	k.reset()
	b.do(t, "load the room list", chromedp.Navigate(k.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`li[data-room="alpha"] a`)))
	for _, room := range []string{"alpha", "beta", "gamma"} {
		b.do(t, "open "+room, chromedp.Click(chromedp.CSS(`li[data-room="`+room+`"] a`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-view="room"][data-room="`+room+`"]`)))
		waitJS(t, b, "connected in "+room, connected, 30*time.Second)
		send(t, b, "hello "+room)
		waitJS(t, b, "the message to "+room+" is delivered", `[...document.querySelectorAll('[data-seq]')].some((el) => el.textContent.includes("hello `+room+`"))`, 30*time.Second)
		b.do(t, "back to the list from "+room, chromedp.Click(chromedp.CSS(`header a[href="/"]`)),
			chromedp.WaitVisible(chromedp.CSS(`li[data-room="alpha"] a`)))
	}
	if n := k.count("/ws"); n != 1 {
		t.Errorf("the walk opened %d sockets, want 1", n)
	}
	if n := k.count("/api/auth/refresh"); n > 1 {
		t.Errorf("the walk refreshed %d times, want at most once", n)
	}
}

// TestBrowserComposerKeepsDraft sends a message over the length limit: the error shows, and the
// draft and the focus stay in the composer.
func TestBrowserComposerKeepsDraft(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	ts := startKaiwa(t)
	b := newBrowser(t, chromium)
	register(t, b, ts.URL, "drafter")
	b.do(t, "open the room", chromedp.Navigate(ts.URL+"/rooms/general"), chromedp.WaitVisible(chromedp.CSS(composer)))
	waitJS(t, b, "connected", connected, 30*time.Second)

	long := strings.Repeat("a", 4001)
	setComposer(t, b, long)
	b.do(t, "press Enter", chromedp.SendKeys(chromedp.CSS(composer), kb.Enter))
	waitJS(t, b, "an error shows", `document.querySelector('[data-view="room"] [role="alert"]')?.textContent.length > 0`, 10*time.Second)
	if n := eval[int](t, b, `document.querySelector('`+composer+`').value.length`); n != len(long) {
		t.Errorf("after the error the composer holds %d characters, want the draft's %d", n, len(long))
	}
	if !eval[bool](t, b, `document.activeElement === document.querySelector('`+composer+`')`) {
		t.Errorf("after the error the focus is on %s, not the composer", eval[string](t, b, `document.activeElement.outerHTML.slice(0, 80)`))
	}
	// A message that fits goes out, and the error goes away.
	setComposer(t, b, "short enough")
	b.do(t, "press Enter", chromedp.SendKeys(chromedp.CSS(composer), kb.Enter))
	waitJS(t, b, "the short message is delivered", `[...document.querySelectorAll('[data-seq]')].some((el) => el.textContent.includes("short enough"))`, 30*time.Second)
	if got := eval[string](t, b, `document.querySelector('[data-view="room"] [role="alert"]')?.textContent ?? ""`); got != "" {
		t.Errorf("after a good send the error still says %q", got)
	}
}

// TestBrowserScrollBack opens a room with more than two pages of history: it opens at the
// newest message; scrolling to the top loads older messages by itself and keeps the message
// that was at the top where it was; offline, the room opens at its newest saved message.
func TestBrowserScrollBack(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	k := startRestartable(t, 10*time.Minute)
	if _, err := k.st.CreateRoom("archive"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 120; i++ {
		if _, _, err := k.st.Append("archive", "u-carol", "carol", fmt.Sprint("archive-", i), fmt.Sprint("old ", i)); err != nil {
			t.Fatal(err)
		}
	}
	b := newBrowser(t, chromium)
	register(t, b, k.URL(), "reader")
	b.do(t, "open the room", chromedp.Navigate(k.URL()+"/rooms/archive"), chromedp.WaitVisible(chromedp.CSS(`[data-seq="120"]`)))
	waitJS(t, b, "connected", connected, 30*time.Second)
	const log = `document.querySelector('[role="log"]')`
	atBottom := `(() => { const l = ` + log + `; return l.scrollHeight - l.scrollTop - l.clientHeight < 4 })()`
	waitJS(t, b, "at the newest message", atBottom, 10*time.Second)

	// The top of the first message shown, relative to the log's box, before and after the
	// older page arrives.
	offsetOf := func(seq int) string {
		return `(document.querySelector('[data-seq="` + strconv.Itoa(seq) + `"]').getBoundingClientRect().top - ` + log + `.getBoundingClientRect().top)`
	}
	first := eval[int](t, b, `+document.querySelector('[data-seq]').dataset.seq`)
	eval[bool](t, b, `(() => { `+log+`.scrollTop = 0; `+log+`.dispatchEvent(new Event("scroll")); return true })()`)
	before := eval[float64](t, b, offsetOf(first))
	waitJS(t, b, "older messages load on scrolling to the top", `document.querySelector('[data-seq="`+strconv.Itoa(first-1)+`"]')`, 15*time.Second)
	// Let a frame pass so that the position is the one people see.
	eval[bool](t, b, `new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`)
	if after := eval[float64](t, b, offsetOf(first)); after-before > 2 || before-after > 2 {
		t.Errorf("message %d moved from %.0f px to %.0f px below the log's top when older ones loaded", first, before, after)
	}

	// Offline, the room opens from its saved messages, at the newest one.
	eval[bool](t, b, `navigator.serviceWorker.ready.then(() => true)`)
	k.stop()
	b.do(t, "reload offline", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`[data-seq="120"]`)))
	waitJS(t, b, "offline at the newest saved message", atBottom, 10*time.Second)
}

// goOffline makes the tab's network go away (or come back) as a phone losing its signal does:
// navigator.onLine changes and requests fail.
func goOffline(offline bool) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		if _, err := cdp.Call(ctx, t, network.OverrideNetworkState, network.OverrideNetworkStateParams{
			Offline: offline, DownloadThroughput: -1, UploadThroughput: -1,
		}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			MatchedNetworkConditions: []*network.Conditions{{Offline: offline, DownloadThroughput: -1, UploadThroughput: -1}},
		})
		return err
	})
}

// TestBrowserNetworkGoesAway takes the network away under a connected room: the status leaves
// "connected" within 10 s, and nobody is claimed to be online; it comes back with the network.
func TestBrowserNetworkGoesAway(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	ts := startKaiwa(t)
	b := newBrowser(t, chromium)
	register(t, b, ts.URL, "roamer")
	b.do(t, "open the room", chromedp.Navigate(ts.URL+"/rooms/general"), chromedp.WaitVisible(chromedp.CSS(composer)))
	waitJS(t, b, "connected", connected, 30*time.Second)
	waitJS(t, b, "online list", `[...document.querySelectorAll('.presence li')].some((li) => li.textContent === "roamer")`, 30*time.Second)

	b.do(t, "go offline", goOffline(true))
	waitJS(t, b, "status leaves connected", statusState+` === "reconnecting" || `+statusState+` === "offline"`, 10*time.Second)
	if n := eval[int](t, b, `document.querySelectorAll('.presence li').length`); n != 0 {
		t.Errorf("offline, the online list still names %d people", n)
	}
	b.do(t, "go online", goOffline(false))
	waitJS(t, b, "connected again", connected, 30*time.Second)
}

// TestBrowserNotFound opens pages that do not exist: each shows a not-found view inside the
// app, with a link back to the rooms, and never a composer.
func TestBrowserNotFound(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	ts := startKaiwa(t)
	b := newBrowser(t, chromium)
	register(t, b, ts.URL, "wanderer")
	for _, path := range []string{"/nope", "/rooms/Bad_Name", "/rooms/no-such-room"} {
		b.do(t, "open "+path, chromedp.Navigate(ts.URL+path),
			chromedp.WaitVisible(chromedp.CSS(`[data-view="not-found"] a[href="/"]`)))
		if eval[bool](t, b, `document.querySelector('form.composer') !== null`) {
			t.Errorf("%s shows a composer", path)
		}
	}
	b.do(t, "follow the link back", chromedp.Click(chromedp.CSS(`[data-view="not-found"] a[href="/"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-view="home"] li[data-room="general"]`)))
}

// TestBrowserAccessibility checks what assistive technology relies on: the logo, list
// semantics under role="log", a skip link that moves focus, and focus on entering a room.
func TestBrowserAccessibility(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	ts := startKaiwa(t)
	b := newBrowser(t, chromium)
	register(t, b, ts.URL, "reader")

	if !eval[bool](t, b, `[...document.querySelectorAll('header img')].every((img) => img.alt !== "" || img.getAttribute("aria-hidden") === "true" || img.getAttribute("role") === "presentation")`) {
		t.Error("a header image has an empty alt without being marked decorative")
	}
	b.do(t, "enter a room", chromedp.Click(chromedp.CSS(`li[data-room="general"] a`)), chromedp.WaitVisible(chromedp.CSS(`[data-view="room"]`)))
	waitJS(t, b, "focus on the room's heading or composer", `document.activeElement.id === "room-title" || document.activeElement.matches('`+composer+`')`, 10*time.Second)
	waitJS(t, b, "connected", connected, 30*time.Second)
	send(t, b, "for the list")
	waitJS(t, b, "delivered", `document.querySelector('[data-seq]')`, 30*time.Second)
	if got := eval[string](t, b, `document.querySelector('[role="log"]').tagName`); got == "OL" || got == "UL" {
		t.Errorf(`role="log" is on a <%s>: it hides the list from assistive technology`, strings.ToLower(got))
	}
	if !eval[bool](t, b, `(() => { const m = document.querySelector('[data-seq]'); return m.tagName === "LI" && m.parentElement.tagName === "OL" && m.closest('[role="log"]') !== null })()`) {
		t.Error(`a message is not an <li> of an <ol> inside role="log"`)
	}
	b.do(t, "use the skip link", chromedp.Focus(chromedp.CSS(`a.skip`)), chromedp.SendKeys(chromedp.CSS(`a.skip`), kb.Enter))
	waitJS(t, b, "the skip link moves focus into main", `document.activeElement.id === "main" || document.querySelector('main').contains(document.activeElement)`, 5*time.Second)
}

// TestBrowserPhone uses the room as a phone does: a narrow touch screen, where Enter starts a
// new line and the button sends, the placeholder fits, and the way back is in the header.
func TestBrowserPhone(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	ts := startKaiwa(t)
	b := newBrowser(t, chromium)
	b.do(t, "a phone's screen", chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulateScale(2)))
	register(t, b, ts.URL, "thumbs")
	b.do(t, "open the room", chromedp.Navigate(ts.URL+"/rooms/general"), chromedp.WaitVisible(chromedp.CSS(composer)))
	waitJS(t, b, "connected", connected, 30*time.Second)
	if !eval[bool](t, b, `matchMedia("(pointer: coarse)").matches`) {
		t.Fatal("the emulated phone has no coarse pointer: the test cannot tell a phone from a desktop")
	}

	if !eval[bool](t, b, `[...document.querySelectorAll('header a[href="/"], .room-head a[href="/"]')].some((a) => /rooms/i.test(a.textContent + " " + (a.getAttribute("aria-label") || "")))`) {
		t.Error("no link back to the rooms in the header")
	}
	fits := eval[bool](t, b, `(() => {
		const ta = document.querySelector('`+composer+`');
		const cs = getComputedStyle(ta);
		const c = document.createElement("canvas").getContext("2d");
		c.font = cs.font;
		const room = ta.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
		return c.measureText(ta.placeholder).width <= room;
	})()`)
	if !fits {
		t.Errorf("the placeholder %q does not fit the composer on a phone", eval[string](t, b, `document.querySelector('`+composer+`').placeholder`))
	}

	b.do(t, "type two lines", chromedp.SendKeys(chromedp.CSS(composer), "first line"+kb.Enter+"second line"))
	if got := eval[string](t, b, `document.querySelector('`+composer+`').value`); got != "first line\nsecond line" {
		t.Errorf("on a phone Enter gave %q, want a new line", got)
	}
	if n := eval[int](t, b, `document.querySelectorAll('[data-seq], [data-pending]').length`); n != 0 {
		t.Errorf("on a phone Enter sent a message (%d in the log)", n)
	}
	b.do(t, "press the button", chromedp.Click(chromedp.CSS(`form.composer button[type="submit"]`)))
	waitJS(t, b, "the two lines are delivered", `[...document.querySelectorAll('[data-seq] .text')].some((el) => el.textContent === "first line\nsecond line")`, 30*time.Second)
}

// TestBrowserSignedOutLoadIsQuiet loads the app signed out: it asks the server nothing about a
// session it has no sign of, so the console stays free of errors; once signed in, a reload
// still refreshes, and signing out makes the app quiet again.
func TestBrowserSignedOutLoadIsQuiet(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	k := startCountingKaiwa(t)
	b := newBrowser(t, chromium)
	var (
		mu     sync.Mutex
		errors []string
	)
	go func() {
		for m, err := range chromedp.Console(b.ctx) {
			if err != nil {
				return
			}
			if s := m.String(); strings.Contains(strings.ToLower(s), "error") || strings.Contains(s, "401") {
				mu.Lock()
				errors = append(errors, s)
				mu.Unlock()
			}
		}
	}()
	loginForm := chromedp.CSS(`form[data-view="login"] input[name="password"]`)
	b.do(t, "load signed out", chromedp.Navigate(k.URL+"/"), chromedp.WaitVisible(loginForm))
	if n := k.count("/api/auth/refresh"); n != 0 {
		t.Errorf("a signed-out load asked for %d refreshes, want none", n)
	}
	register(t, b, k.URL, "quiet")
	if eval[bool](t, b, `document.cookie.includes("kaiwa_refresh")`) {
		t.Error("the refresh cookie is readable by scripts")
	}
	k.reset()
	b.do(t, "reload signed in", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`[data-view="home"] [data-user="quiet"]`)))
	if n := k.count("/api/auth/refresh"); n != 1 {
		t.Errorf("a signed-in reload refreshed %d times, want once", n)
	}
	// A browser signed in before the server set hints has no hint cookie and no record of one,
	// but its user's data: it refreshes once, stays signed in, and gets the hint back.
	eval[bool](t, b, `document.cookie = "kaiwa_session=; Max-Age=0; Path=/"; localStorage.removeItem("kaiwa.hinted"); true`)
	if eval[bool](t, b, `document.cookie.includes("kaiwa_session")`) {
		t.Fatal("the hint cookie could not be removed")
	}
	k.reset()
	b.do(t, "reload as before hints", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`[data-view="home"] [data-user="quiet"]`)))
	if n := k.count("/api/auth/refresh"); n != 1 {
		t.Errorf("a reload without the hint but with the user's data refreshed %d times, want once", n)
	}
	if !eval[bool](t, b, `document.cookie.includes("kaiwa_session")`) {
		t.Error("the refresh did not set the hint cookie again")
	}
	b.do(t, "sign out", chromedp.Click(chromedp.CSS(`button[data-action="logout"]`)), chromedp.WaitVisible(loginForm))
	k.reset()
	b.do(t, "reload signed out", chromedp.Reload(), chromedp.WaitVisible(loginForm))
	if n := k.count("/api/auth/refresh"); n != 0 {
		t.Errorf("a reload after signing out asked for %d refreshes, want none", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errors) > 0 {
		t.Errorf("the console shows errors: %q", errors)
	}
}

// TestBrowserCombiningMarks sends one letter with 3999 combining marks: its bubble keeps to
// its own box, so it cannot draw over the messages around it.
func TestBrowserCombiningMarks(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	ts := startKaiwa(t)
	b := newBrowser(t, chromium)
	register(t, b, ts.URL, "zalgo")
	b.do(t, "open the room", chromedp.Navigate(ts.URL+"/rooms/general"), chromedp.WaitVisible(chromedp.CSS(composer)))
	waitJS(t, b, "connected", connected, 30*time.Second)
	send(t, b, "above")
	setComposer(t, b, "a"+strings.Repeat("\u0301", 3999))
	b.do(t, "send the marks", chromedp.SendKeys(chromedp.CSS(composer), kb.Enter))
	send(t, b, "below")
	waitJS(t, b, "three delivered", `document.querySelectorAll('[data-seq]').length === 3`, 30*time.Second)
	type box struct{ Top, Bottom float64 }
	boxes := eval[[]box](t, b, `[...document.querySelectorAll('[data-seq]')].map((el) => { const r = el.getBoundingClientRect(); return {top: r.top, bottom: r.bottom} })`)
	for i := 1; i < len(boxes); i++ {
		if boxes[i].Top < boxes[i-1].Bottom-0.5 {
			t.Errorf("message %d's box starts at %.0f, above the end of the one before (%.0f)", i+1, boxes[i].Top, boxes[i-1].Bottom)
		}
	}
	// Glyphs may paint outside their box without moving it: the text must be clipped to it.
	clip := eval[string](t, b, `(() => { const cs = getComputedStyle(document.querySelector('[data-seq="2"] .text')); return cs.overflow + " " + cs.contain })()`)
	if !strings.Contains(clip, "hidden") && !strings.Contains(clip, "clip") && !strings.Contains(clip, "paint") && !strings.Contains(clip, "strict") && !strings.Contains(clip, "content") {
		t.Errorf("the message text paints outside its box (overflow and contain: %s)", clip)
	}
}

// TestBrowserFailedSend keeps two sends in the outbox that the server can never take: one to a
// room that does not exist, one over the length limit. Both show as failed, stay failed (not
// sent again) across reloads, and discarding removes them for good.
func TestBrowserFailedSend(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	ts := startKaiwa(t)
	b := newBrowser(t, chromium)
	register(t, b, ts.URL, "sender")
	eval[bool](t, b, `(() => { localStorage.setItem("kaiwa.outbox", JSON.stringify([
		{Room: "gone", ID: "lost-1", Text: "to nowhere"},
		{Room: "general", ID: "long-1", Text: "x".repeat(4001)},
	])); return true })()`)
	failed := func(id string) chromedp.CSS {
		return chromedp.CSS(`[data-failed][data-id="` + id + `"] button[data-action="discard"]`)
	}
	allFailed := `JSON.parse(localStorage.getItem("kaiwa.outbox") || "[]").every((p) => p.Failed)`
	for i := range 2 {
		b.do(t, fmt.Sprintf("reload %d", i+1), chromedp.Reload(),
			chromedp.WaitVisible(failed("lost-1")), chromedp.WaitVisible(failed("long-1")))
		waitJS(t, b, "the outbox keeps them as failed", allFailed, 10*time.Second)
		if eval[bool](t, b, `document.body.textContent.includes("Sending…")`) {
			t.Error("a refused send still says Sending…")
		}
	}
	b.do(t, "discard the send to a missing room", chromedp.Click(failed("lost-1")), chromedp.WaitNotPresent(failed("lost-1")))
	waitJS(t, b, "gone from local storage", `!JSON.parse(localStorage.getItem("kaiwa.outbox") || "[]").some((p) => p.ID === "lost-1")`, 10*time.Second)

	b.do(t, "open the room", chromedp.Click(chromedp.CSS(`li[data-room="general"] a`)), chromedp.WaitVisible(failed("long-1")))
	if !eval[bool](t, b, `document.querySelector('[role="log"] [data-failed][data-id="long-1"] button[data-action="retry"]') !== null`) {
		t.Error("the failed send in the room offers no retry")
	}
	b.do(t, "discard the long one", chromedp.Click(failed("long-1")), chromedp.WaitNotPresent(failed("long-1")))
	if !pollJS(b, `JSON.parse(localStorage.getItem("kaiwa.outbox") || "[]").length === 0`, 10*time.Second) {
		t.Fatalf("after discarding both the outbox holds %s", eval[string](t, b, `localStorage.getItem("kaiwa.outbox")`))
	}
	b.do(t, "reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`[data-view="room"]`)))
	waitJS(t, b, "connected", connected, 30*time.Second)
	if n := eval[int](t, b, `document.querySelectorAll('[data-pending]').length`); n != 0 {
		t.Errorf("after discarding and a reload %d sends are back", n)
	}
}
