package browser_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// watchEarly is evaluated in every new document before the page's scripts. When the HTML is
// parsed (DOMContentLoaded: app.js has started fetching app.wasm, no Go has run) it records in
// window.__kaiwaEarly the room list's snapshot the page holds then, if any.
const watchEarly = `(() => {
	document.addEventListener("DOMContentLoaded", () => {
		const s = document.querySelector("body > .snapshot");
		window.__kaiwaEarly = {
			present: !!s,
			user: s ? s.dataset.snapshot : "",
			inert: s ? s.inert : false,
			rooms: s ? [...s.querySelectorAll("ul.rooms li a")].map((a) => a.getAttribute("href")) : [],
			goRan: performance.getEntriesByName("kaiwa-main").length > 0,
		};
	});
})();`

// snapshotKept is true once the app has kept a room list's snapshot in Cache Storage.
const snapshotKept = `caches.open("kaiwa-snapshot").then((c) => c.match("/kaiwa-snapshot.html")).then((r) => r ? r.text() : "")`

type early struct {
	Present bool     `json:"present"`
	User    string   `json:"user"`
	Inert   bool     `json:"inert"`
	Rooms   []string `json:"rooms"`
	GoRan   bool     `json:"goRan"`
}

// TestBrowserRoomListSnapshot checks the room list a returning user sees before app.wasm has
// run: the service worker puts the snapshot the app kept into the page of "/", inert, before any
// Go runs; the live app replaces it; signing out deletes it, and the next user never sees it.
func TestBrowserRoomListSnapshot(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	ts := startKaiwa(t)
	b := newBrowser(t, chromium)
	b.do(t, "watch documents", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: watchEarly})
		return err
	}))
	liveList := chromedp.CSS(`[data-view="home"] ul.rooms li[data-room="general"] a`)
	noSnapshot := `!document.querySelector(".snapshot")`
	earlyOf := func() early { return eval[early](t, b, `window.__kaiwaEarly`) }
	loginForm := chromedp.CSS(`form[data-view="login"] input[name="password"]`)

	register(t, b, ts.URL, "snapa")
	b.do(t, "the room list", chromedp.WaitVisible(liveList))
	// The worker controls the next load once it is active; the room list shown is kept.
	eval[bool](t, b, `navigator.serviceWorker.ready.then(() => true)`)
	waitJS(t, b, "the snapshot is kept", `(`+snapshotKept+`.then((s) => window.__kept = s), (window.__kept || "").includes('data-snapshot="snapa"'))`, 30*time.Second)

	b.do(t, "reload as a returning user", chromedp.Reload(), chromedp.WaitVisible(liveList))
	if e := earlyOf(); e.User != "snapa" || !e.Inert || e.GoRan || len(e.Rooms) == 0 || e.Rooms[0] != "/rooms/general" {
		t.Errorf("before app.wasm ran, the page held %+v, want snapa's inert room list with /rooms/general", e)
	}
	waitJS(t, b, "the live app replaces the snapshot", noSnapshot, 30*time.Second)
	if n := eval[int](t, b, `document.querySelectorAll("body > .kaiwa").length`); n != 1 {
		t.Errorf("%d app views in the body, want 1", n)
	}

	// Signing out deletes the snapshot: the next load of "/" shows none.
	b.do(t, "sign out", chromedp.Click(chromedp.CSS(`button[data-action="logout"]`)), chromedp.WaitVisible(loginForm))
	waitJS(t, b, "the snapshot is deleted", `(`+snapshotKept+`.then((s) => window.__kept = s), window.__kept === "")`, 30*time.Second)
	b.do(t, "reload signed out", chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible(loginForm))
	if e := earlyOf(); e.Present {
		t.Errorf("a signed-out load held a snapshot: %+v", e)
	}

	// Another user signs in here: their own list is kept and shown, never the first user's.
	register(t, b, ts.URL, "snapb")
	b.do(t, "snapb's room list", chromedp.WaitVisible(liveList))
	waitJS(t, b, "snapb's snapshot is kept", `(`+snapshotKept+`.then((s) => window.__kept = s), (window.__kept || "").includes('data-snapshot="snapb"'))`, 30*time.Second)
	b.do(t, "reload as snapb", chromedp.Reload(), chromedp.WaitVisible(liveList))
	if e := earlyOf(); e.User != "snapb" {
		t.Errorf("before app.wasm ran, snapb's page held %+v, want snapb's room list", e)
	}
	waitJS(t, b, "the live app replaces snapb's snapshot", noSnapshot, 30*time.Second)
}
