package browser_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// roomLink is the link of a room in the user's list.
func roomLink(room string) string {
	return `document.querySelector('ul.rooms li[data-room="` + room + `"] a')`
}

// secondTab opens another tab of b's browser: the same user, with its own session.
func secondTab(t *testing.T, b *browser) *browser {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a second tab: %v", err)
	}
	return &browser{ctx: ctx}
}

// openRoom opens a room's page and waits until it is connected.
func openRoom(t *testing.T, b *browser, base, room string) {
	t.Helper()
	b.do(t, "open "+room, chromedp.Navigate(base+"/rooms/"+room),
		chromedp.WaitVisible(chromedp.CSS(`[data-view="room"][data-room="`+room+`"] [role="log"]`)))
	waitJS(t, b, "connected in "+room, connected, 30*time.Second)
}

// recordBadge is evaluated in every new document before the page's scripts: it records in
// window.__kaiwaBadges each count the page gives the installed app's badge, 0 when it clears
// it, and passes the call on to the browser's own Badging API where it has one.
const recordBadge = `(() => {
	window.__kaiwaBadges = [];
	const set = navigator.setAppBadge, clear = navigator.clearAppBadge;
	navigator.setAppBadge = function (n) {
		window.__kaiwaBadges.push(n === undefined ? "flag" : n);
		return set ? set.call(navigator, n) : Promise.resolve();
	};
	navigator.clearAppBadge = function () {
		window.__kaiwaBadges.push(0);
		return clear ? clear.call(navigator) : Promise.resolve();
	};
})();`

// TestBrowserUnreadBadges has bob write in general while alice looks at her room list: the
// room's badge, the tab title and the app badge count it, live; alice opens the room and the
// badges clear, in her other tab too.
func TestBrowserUnreadBadges(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	ts := startKaiwa(t)
	alice, bob := newBrowser(t, chromium), newBrowser(t, chromium)
	alice.do(t, "record the app badge", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: recordBadge})
		return err
	}))
	register(t, alice, ts.URL, "alice")
	register(t, bob, ts.URL, "bob")
	waitJS(t, alice, "general listed", roomLink("general"), 30*time.Second)
	if eval[bool](t, alice, `'unread' in `+roomLink("general")+`.dataset`) {
		t.Fatal("general has an unread badge before anyone wrote")
	}
	other := secondTab(t, alice)
	other.do(t, "the other tab shows the list", chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`ul.rooms li[data-room="general"] a`)))

	openRoom(t, bob, ts.URL, "general")
	send(t, bob, "hello alice")
	for i, b := range []*browser{alice, other} {
		who := "alice's tab " + strconv.Itoa(i+1)
		waitJS(t, b, who+": general's badge counts 1", roomLink("general")+`.dataset.unread === "1"`, 30*time.Second)
		waitJS(t, b, who+": the title counts 1", `document.title.startsWith("(1) ")`, 10*time.Second)
	}
	if got := eval[string](t, alice, roomLink("general")+`.querySelector('.badge').textContent`); got != "1" {
		t.Errorf("the badge shows %q, want 1", got)
	}
	waitJS(t, alice, "the app badge counts 1", `window.__kaiwaBadges.at(-1) === 1`, 10*time.Second)

	alice.do(t, "alice opens general from the list", chromedp.Click(chromedp.CSS(`ul.rooms li[data-room="general"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-view="room"][data-room="general"]`)))
	waitJS(t, alice, "the message is shown", `[...document.querySelectorAll('[role="log"] [data-seq]')].some((el) => el.textContent.includes("hello alice"))`, 30*time.Second)
	waitJS(t, alice, "the new messages divider is above it", `document.querySelector('[role="log"] [data-divider]')?.nextElementSibling?.textContent.includes("hello alice")`, 10*time.Second)
	waitJS(t, alice, "the title has no count once read", `!document.title.startsWith("(")`, 30*time.Second)
	waitJS(t, alice, "the app badge is cleared", `window.__kaiwaBadges.at(-1) === 0`, 10*time.Second)
	if got := eval[string](t, alice, `JSON.stringify(window.__kaiwaBadges)`); got != "[1,0]" {
		t.Errorf("the app badge was given %s, want 1 then cleared", got)
	}
	waitJS(t, other, "the other tab's badge clears", roomLink("general")+` && !('unread' in `+roomLink("general")+`.dataset)`, 30*time.Second)
	waitJS(t, other, "the other tab's title has no count", `!document.title.startsWith("(")`, 10*time.Second)

	alice.do(t, "back to the list", chromedp.Click(chromedp.CSS(`header a[href="/"]`)),
		chromedp.WaitVisible(chromedp.CSS(`ul.rooms li[data-room="general"] a`)))
	if eval[bool](t, alice, `'unread' in `+roomLink("general")+`.dataset`) {
		t.Error("general still has a badge after alice read it")
	}
}

// TestBrowserDirectMessage has alice find bob by the start of his name and write to him: bob's
// list shows the conversation by alice's name with a badge, and he opens it and answers with a
// mention, which alice sees highlighted. A link is clickable and safe; alice edits and deletes
// her message, and bob sees both.
func TestBrowserDirectMessage(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	ts := startKaiwa(t)
	alice, bob := newBrowser(t, chromium), newBrowser(t, chromium)
	register(t, bob, ts.URL, "bob")
	register(t, alice, ts.URL, "alice")

	alice.do(t, "search for bob", chromedp.SendKeys(chromedp.CSS(`form.new-dm input[name="user"]`), "bo"),
		chromedp.WaitVisible(chromedp.CSS(`form.new-dm button[data-user="bob"]`)),
		chromedp.Click(chromedp.CSS(`form.new-dm button[data-user="bob"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-view="room"] [role="log"]`)))
	dm := eval[string](t, alice, `document.querySelector('[data-view="room"]').dataset.room`)
	if len(dm) != 19 || dm[:3] != "dm-" {
		t.Fatalf("alice landed in %q, not a dm", dm)
	}
	if title := eval[string](t, alice, `document.querySelector('#room-title').textContent`); title != "bob" {
		t.Errorf("the dm is titled %q, want bob", title)
	}
	waitJS(t, alice, "connected", connected, 30*time.Second)
	send(t, alice, "hi bob, see https://example.com/a?b=1.")

	waitJS(t, bob, "bob's list shows the dm with a badge", roomLink(dm)+`?.dataset.unread === "1"`, 30*time.Second)
	if name := eval[string](t, bob, roomLink(dm)+`.querySelector('.room-name').textContent`); name != "alice" {
		t.Errorf("bob's list names the dm %q, want alice", name)
	}
	bob.do(t, "bob opens the dm", chromedp.Click(chromedp.CSS(`ul.rooms li[data-room="`+dm+`"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-view="room"][data-room="`+dm+`"]`)))
	waitJS(t, bob, "connected", connected, 30*time.Second)
	mine := `[...document.querySelectorAll('[role="log"] [data-seq][data-from="alice"]')][0]`
	waitJS(t, bob, "alice's message is shown", mine, 30*time.Second)
	link := eval[map[string]string](t, bob, `(() => { const a = `+mine+`.querySelector('.text a'); return a ? {href: a.getAttribute('href'), rel: a.rel, target: a.target, text: a.textContent} : {} })()`)
	if link["href"] != "https://example.com/a?b=1" || link["rel"] != "noopener noreferrer nofollow" || link["target"] != "_blank" || link["text"] != "https://example.com/a?b=1" {
		t.Errorf("the link is %v", link)
	}
	send(t, bob, "hello @alice")
	waitJS(t, alice, "alice sees her name highlighted", `[...document.querySelectorAll('[role="log"] [data-from="bob"] mark.mention')].some((m) => m.textContent === "@alice")`, 30*time.Second)

	alice.do(t, "alice edits her message",
		chromedp.Click(chromedp.CSS(`[role="log"] [data-from="alice"] button[data-action="edit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form.edit-form textarea[name="edit"]`)))
	eval[bool](t, alice, `(() => { document.querySelector('form.edit-form textarea').value = "hi bob, corrected"; return true })()`)
	alice.do(t, "save the edit", chromedp.Click(chromedp.CSS(`form.edit-form button[data-action="save"]`)))
	waitJS(t, bob, "bob sees the edit", mine+`.querySelector('.text').textContent === "hi bob, corrected (edited)"`, 30*time.Second)

	alice.do(t, "alice deletes her message",
		chromedp.Click(chromedp.CSS(`[role="log"] [data-from="alice"] button[data-action="delete"]`)))
	waitJS(t, bob, "bob sees the deletion", mine+`.querySelector('.text').textContent === "message deleted"`, 30*time.Second)
	if n := eval[int](t, bob, `document.querySelectorAll('[role="log"] [data-seq]').length`); n != 2 {
		t.Errorf("bob's log shows %d messages, want 2 (edits and deletions are not messages of their own)", n)
	}
}

// inAppTo opens a room from the room list, through the app's links, and waits until the room
// is connected.
func inAppTo(t *testing.T, b *browser, room string) {
	t.Helper()
	b.do(t, "open "+room+" from the list",
		chromedp.Click(chromedp.CSS(`header a[href="/"]`)),
		chromedp.WaitVisible(chromedp.CSS(`ul.rooms li[data-room="`+room+`"] a`)),
		chromedp.Click(chromedp.CSS(`ul.rooms li[data-room="`+room+`"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-view="room"][data-room="`+room+`"] [role="log"]`)))
	waitJS(t, b, "connected in "+room, connected, 30*time.Second)
}

// grantNotifications allows the page's origin to show notifications, as the user would.
func grantNotifications(t *testing.T, b *browser, origin string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	_, err := cdp.Call(ctx, chromedp.FromContext(b.ctx).Browser, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
		Permission: &cdpbrowser.PermissionDescriptor{Name: "notifications"},
		Setting:    cdpbrowser.PermissionSettingGranted,
		Origin:     origin,
	})
	if err != nil {
		t.Fatalf("grant notifications: %v", err)
	}
}

// clickNotification does what a click on b's notification tagged tag does. Headless Chromium
// shows no notification to click: the test attaches to the service worker's DevTools target and
// dispatches notificationclick there, with that notification, as the browser would.
func clickNotification(t *testing.T, b *browser, tag string) {
	t.Helper()
	var id target.ID
	for deadline := time.Now().Add(30 * time.Second); id == ""; time.Sleep(100 * time.Millisecond) {
		// An idle worker stops, and is listed again once something, such as a message, starts it.
		eval[bool](t, b, `(async () => { (await navigator.serviceWorker.ready).active.postMessage(null); return true })()`)
		targets, err := chromedp.Targets(b.ctx)
		if err != nil {
			t.Fatalf("list the browser's targets: %v", err)
		}
		for _, ti := range targets {
			if ti.Type == "service_worker" && strings.HasSuffix(ti.URL, "/app-worker.js") {
				id = ti.TargetID
			}
		}
		if id == "" && time.Now().After(deadline) {
			t.Fatal("no service worker target within 30 s")
		}
	}
	wctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithTargetID(id), chromedp.WithDetachOnCancel())
	defer cancel()
	ctx, cancelRun := context.WithTimeout(wctx, 30*time.Second)
	defer cancelRun()
	clicked, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(async () => {
		const n = (await self.registration.getNotifications()).find((n) => n.tag === `+strconv.Quote(tag)+`);
		if (!n) return false;
		const click = new NotificationEvent("notificationclick", {notification: n});
		// Only the browser's own events may extend the worker's life (waitUntil throws on
		// others); the attached debugger keeps the worker alive meanwhile.
		click.waitUntil = () => {};
		self.dispatchEvent(click);
		return true;
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("click the notification in the service worker: %v", err)
	}
	if !clicked {
		t.Fatalf("the service worker has no notification tagged %q", tag)
	}
}

// TestBrowserMentionNotifies has bob mention alice in a room while she reads another: with her
// permission, a notification for that room shows through the service worker, and a click on it
// opens the room; once she mutes the room, its messages count in the title and show no
// notification.
func TestBrowserMentionNotifies(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	ts := startKaiwa(t)
	alice, bob := newBrowser(t, chromium), newBrowser(t, chromium)
	register(t, alice, ts.URL, "alice")
	register(t, bob, ts.URL, "bob")
	alice.do(t, "alice creates the room side and lands in it",
		chromedp.SendKeys(chromedp.CSS(`form.create-room input[name="room"]`), "side"),
		chromedp.Click(chromedp.CSS(`form.create-room button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-view="room"][data-room="side"]`)))
	grantNotifications(t, alice, ts.URL)
	if !eval[bool](t, alice, `navigator.serviceWorker.ready.then(() => Notification.permission === "granted")`) {
		t.Fatal("notifications are not allowed, or no service worker")
	}
	// Through the app's links: the tab's session, which joined side, stays.
	inAppTo(t, alice, "general")

	openRoom(t, bob, ts.URL, "side")
	send(t, bob, "@alice look here")
	// waitJS does not wait for promises: the page polls the notifications itself, 2 s a call,
	// for up to 60 s in all.
	for deadline := time.Now().Add(60 * time.Second); !eval[bool](t, alice, `(async () => {
		const reg = await navigator.serviceWorker.ready;
		for (let i = 0; i < 20; i++) {
			if ((await reg.getNotifications()).some((n) => n.tag === "side")) return true;
			await new Promise((r) => setTimeout(r, 100));
		}
		return false;
	})()`); {
		if time.Now().After(deadline) {
			t.Fatal("no notification for side within 60 s")
		}
	}
	got := eval[map[string]string](t, alice, `(async () => { const n = (await (await navigator.serviceWorker.ready).getNotifications()).find((n) => n.tag === "side"); return {title: n.title, body: n.body, url: n.data.url} })()`)
	if got["title"] != "#side" || got["body"] != "bob: @alice look here" || got["url"] != "/rooms/side" {
		t.Errorf("the notification is %v", got)
	}
	if eval[bool](t, alice, `(async () => (await (await navigator.serviceWorker.ready).getNotifications()).some((n) => n.tag === "general"))()`) {
		t.Error("a notification for the room alice has open")
	}

	// A click on the notification opens its room in the tab, which the page's router moves there
	// without a reload, and closes the notification.
	eval[bool](t, alice, `(() => { window.__kaiwaSameDocument = true; return true })()`)
	clickNotification(t, alice, "side")
	waitJS(t, alice, "the clicked notification's room opens", `document.querySelector('[data-view="room"][data-room="side"]') && window.__kaiwaSameDocument`, 30*time.Second)
	waitJS(t, alice, "connected in side", connected, 30*time.Second)
	if eval[bool](t, alice, `(async () => (await (await navigator.serviceWorker.ready).getNotifications()).some((n) => n.tag === "side"))()`) {
		t.Error("the clicked notification is still shown")
	}

	// Muted, side keeps its badge and shows no notification.
	alice.do(t, "alice mutes side", chromedp.Click(chromedp.CSS(`button[data-action="mute"]`)))
	waitJS(t, alice, "side is muted", `document.querySelector('button[data-action="mute"]').getAttribute('aria-pressed') === "true"`, 10*time.Second)
	inAppTo(t, alice, "general")
	waitJS(t, alice, "nothing unread", `!document.title.startsWith("(")`, 30*time.Second)
	send(t, bob, "@alice again")
	waitJS(t, alice, "the title counts the message in the muted room", `document.title.startsWith("(1) ")`, 30*time.Second)
	// A negative: give a notification, were one on its way, the time it takes to show.
	if eval[bool](t, alice, `(async () => {
		const reg = await navigator.serviceWorker.ready;
		for (let i = 0; i < 20; i++) {
			if ((await reg.getNotifications()).some((n) => n.tag === "side")) return true;
			await new Promise((r) => setTimeout(r, 100));
		}
		return false;
	})()`) {
		t.Error("a notification for a muted room")
	}
}

// TestBrowserRoomsOfEveryKind has alice create a private room and add bob, who sees it appear
// in his list, opens it and leaves it; then alice creates a public room, which bob finds among
// the public rooms and joins.
func TestBrowserRoomsOfEveryKind(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	ts := startKaiwa(t)
	alice, bob := newBrowser(t, chromium), newBrowser(t, chromium)
	register(t, bob, ts.URL, "bob")
	register(t, alice, ts.URL, "alice")

	alice.do(t, "alice creates the private room team",
		chromedp.SendKeys(chromedp.CSS(`form.create-room input[name="room"]`), "team"),
		chromedp.SetValue(chromedp.CSS(`form.create-room select[name="kind"]`), "private"),
		chromedp.Click(chromedp.CSS(`form.create-room button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-view="room"][data-room="team"]`)))
	waitJS(t, alice, "connected", connected, 30*time.Second)
	alice.do(t, "alice adds bob",
		chromedp.Click(chromedp.CSS(`.members details summary`)),
		chromedp.SendKeys(chromedp.CSS(`form.add-member input[name="member"]`), "bob"),
		chromedp.Click(chromedp.CSS(`form.add-member button[type="submit"]`)))
	waitJS(t, alice, "bob is a member", `document.querySelector('.member-list [data-member="bob"]')`, 30*time.Second)

	waitJS(t, bob, "team appears in bob's list", roomLink("team")+`?.closest('li').dataset.kind === "private"`, 30*time.Second)
	bob.do(t, "bob opens team", chromedp.Click(chromedp.CSS(`ul.rooms li[data-room="team"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-view="room"][data-room="team"] button[data-action="leave"]`)))
	waitJS(t, bob, "connected", connected, 30*time.Second)
	bob.do(t, "bob leaves team", chromedp.Click(chromedp.CSS(`button[data-action="leave"]`)))
	if !pollJS(bob, `document.querySelector('[data-view="home"] ul.rooms li[data-room="general"]')`, 30*time.Second) {
		t.Fatalf("bob is not back on the list after leaving: %s", eval[string](t, bob, `location.pathname + " " + document.querySelector("main").innerHTML`))
	}
	waitJS(t, bob, "team is gone from bob's list", `!document.querySelector('[data-room="team"]')`, 30*time.Second)

	alice.do(t, "alice creates the public room lobby",
		chromedp.Click(chromedp.CSS(`header a[href="/"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form.create-room input[name="room"]`)),
		chromedp.SendKeys(chromedp.CSS(`form.create-room input[name="room"]`), "lobby"),
		chromedp.Click(chromedp.CSS(`form.create-room button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-view="room"][data-room="lobby"]`)))
	bob.do(t, "bob lists the rooms again", chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`ul.rooms.public li[data-room="lobby"] button[data-action="join"]`)),
		chromedp.Click(chromedp.CSS(`ul.rooms.public li[data-room="lobby"] button[data-action="join"]`)))
	waitJS(t, bob, "lobby is among bob's rooms", `document.querySelector('ul.rooms:not(.public) li[data-room="lobby"] a')`, 30*time.Second)
	waitJS(t, bob, "and no longer among the others", `!document.querySelector('ul.rooms.public li[data-room="lobby"]')`, 10*time.Second)
}

// TestBrowserJumpToLatest has bob write while alice reads older messages: a button counts the
// new ones and takes her to them.
func TestBrowserJumpToLatest(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	ts := startKaiwa(t)
	alice, bob := newBrowser(t, chromium), newBrowser(t, chromium)
	register(t, alice, ts.URL, "alice")
	register(t, bob, ts.URL, "bob")
	openRoom(t, alice, ts.URL, "general")
	openRoom(t, bob, ts.URL, "general")
	const first = 30
	for i := range first {
		setComposer(t, bob, "line "+strconv.Itoa(i)+"\n\n\n")
		send(t, bob, "")
	}
	waitJS(t, alice, "alice has every message", `document.querySelectorAll('[role="log"] [data-seq]').length === `+strconv.Itoa(first), 60*time.Second)
	waitJS(t, alice, "the log overflows", `(() => { const l = document.getElementById('room-log'); return l.scrollHeight > l.clientHeight + 200 })()`, 10*time.Second)
	eval[bool](t, alice, `(() => { document.getElementById('room-log').scrollTop = 0; return true })()`)
	send(t, bob, "new one")
	send(t, bob, "new two")
	waitJS(t, alice, "the button counts 2 new", `document.querySelector('button[data-action="jump"]')?.dataset.new === "2"`, 30*time.Second)
	alice.do(t, "jump", chromedp.Click(chromedp.CSS(`button[data-action="jump"]`)))
	waitJS(t, alice, "at the end, the button gone", `(() => { const l = document.getElementById('room-log'); return l.scrollHeight - l.scrollTop - l.clientHeight < 80 && !document.querySelector('button[data-action="jump"]') })()`, 10*time.Second)
}
