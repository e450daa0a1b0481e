package browser_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"kaiwa/server"
	"kaiwa/server/servertest"
	"kaiwa/server/store"
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

// snapshotKept resolves to the room list's snapshot the app kept in Cache Storage, or "" when
// none is kept.
const snapshotKept = `caches.open("kaiwa-snapshot").then((c) => c.match("/kaiwa-snapshot.html")).then((r) => r ? r.text() : "")`

// noneKept is true, polled, once no snapshot is kept: each call looks again and reports what
// the look before it found.
const noneKept = `(` + snapshotKept + `.then((s) => window.__kept = s), window.__kept === "")`

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
	noSnapshot := `!document.querySelector(".snapshot")`
	earlyOf := func() early { return eval[early](t, b, `window.__kaiwaEarly`) }

	register(t, b, ts.URL, "snapa")
	b.do(t, "the room list", chromedp.WaitVisible(liveList))
	// The worker controls the next load once it is active; the room list shown is kept.
	keepsSnapshot(t, b, "snapa")

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
	waitJS(t, b, "the snapshot is deleted", noneKept, 30*time.Second)
	b.do(t, "reload signed out", chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible(loginForm))
	if e := earlyOf(); e.Present {
		t.Errorf("a signed-out load held a snapshot: %+v", e)
	}

	// Another user signs in here: their own list is kept and shown, never the first user's.
	register(t, b, ts.URL, "snapb")
	b.do(t, "snapb's room list", chromedp.WaitVisible(liveList))
	keepsSnapshot(t, b, "snapb")
	b.do(t, "reload as snapb", chromedp.Reload(), chromedp.WaitVisible(liveList))
	if e := earlyOf(); e.User != "snapb" {
		t.Errorf("before app.wasm ran, snapb's page held %+v, want snapb's room list", e)
	}
	waitJS(t, b, "the live app replaces snapb's snapshot", noSnapshot, 30*time.Second)
}

// faultyKaiwa is a whole Kaiwa behind a handler that can make downloads of app.wasm hang, and
// that serves a Go program that stops as it starts at /test/stop.wasm, and noCookieStoreJS at
// /test/nocookiestore.js.
type faultyKaiwa struct {
	URL   string
	Store *store.Store
	hang  atomic.Bool
}

func startFaultyKaiwa(t *testing.T) *faultyKaiwa {
	t.Helper()
	s := servertest.Start(t, server.Config{
		AccessTTL:     10 * time.Minute,
		RefreshTTL:    720 * time.Hour,
		Registration:  true,
		SecureCookies: "never",
	}, nil)
	k := &faultyKaiwa{Store: s.Store}
	inner := s.Kaiwa.Handler()
	stop := buildStopWasm(t)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/test/stop.wasm":
			w.Header().Set("Content-Type", "application/wasm")
			w.Write(stop)
		case r.URL.Path == "/test/nocookiestore.js":
			w.Header().Set("Content-Type", "text/javascript")
			w.Write([]byte(noCookieStoreJS))
		case r.URL.Path == "/web/app.wasm" && k.hang.Load():
			<-r.Context().Done()
		default:
			inner.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(ts.Close)
	k.URL = ts.URL
	return k
}

// buildStopWasm compiles testdata/stopwasm for the browser.
func buildStopWasm(t *testing.T) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "stop.wasm")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/stopwasm")
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build testdata/stopwasm: %v\n%s", err, msg)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// appCache is the service worker's cache of the app's files, for a page it controls.
const appCache = `caches.keys().then((keys) => caches.open(keys.find((k) => k.startsWith("kaiwa-") && k !== "kaiwa-snapshot")))`

// liveList is the live app's room list, loginForm its sign-in form.
var (
	liveList  = chromedp.CSS(`[data-view="home"] ul.rooms li[data-room="general"] a`)
	loginForm = chromedp.CSS(`form[data-view="login"] input[name="password"]`)
)

// keepsSnapshot waits until the service worker controls b's next load and the app has kept
// user's room list for it.
func keepsSnapshot(t *testing.T, b *browser, user string) {
	t.Helper()
	eval[bool](t, b, `navigator.serviceWorker.ready.then(() => true)`)
	waitJS(t, b, user+"'s snapshot is kept", `(`+snapshotKept+`.then((s) => window.__kept = s), (window.__kept || "").includes('data-snapshot="`+user+`"'))`, 30*time.Second)
}

// watchEarlyDocuments records in each new document of b the snapshot it held when parsed
// (watchEarly).
func watchEarlyDocuments(t *testing.T, b *browser) {
	t.Helper()
	b.do(t, "watch documents", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: watchEarly})
		return err
	}))
}

// TestBrowserSnapshotWhenAppCannotStart checks that a returning user's room list snapshot, which
// is inert, never stays over a page whose app.wasm could not start: when app.wasm does not
// compile, and when the Go program stops as it starts, the snapshot goes (and is deleted), and
// go-app's loader shows the error with a button that reloads; when app.wasm's download hangs,
// the snapshot goes and the loader shows that the app is still loading.
func TestBrowserSnapshotWhenAppCannotStart(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	k := startFaultyKaiwa(t)
	b := newBrowser(t, chromium)
	watchEarlyDocuments(t, b)
	const (
		label     = `document.getElementById("app-wasm-loader-label")?.innerText`
		reload    = `document.querySelector('#app-wasm-loader button')`
		failed    = `!document.querySelector(".snapshot") && ` + reload
		loading   = `!document.querySelector(".snapshot") && ` + label + ` === "Loading Kaiwa…" && !` + reload
		heldEarly = `window.__kaiwaEarly.user`
	)

	register(t, b, k.URL, "stopper")
	b.do(t, "the room list", chromedp.WaitVisible(liveList))
	keepsSnapshot(t, b, "stopper")

	// The cached app.wasm is not WebAssembly: go-app's loader says why compiling failed.
	eval[bool](t, b, appCache+`.then((c) => c.put("/web/app.wasm", new Response("not wasm", {headers: {"Content-Type": "application/wasm"}}))).then(() => true)`)
	b.do(t, "reload with an app.wasm that does not compile", chromedp.Reload())
	waitJS(t, b, "the failure shows instead of the snapshot", failed, 60*time.Second)
	if got := eval[string](t, b, heldEarly); got != "stopper" {
		t.Errorf("the page held the snapshot of %q as it loaded, want stopper's", got)
	}
	if got := eval[string](t, b, label); !strings.Contains(got, "CompileError") {
		t.Errorf("the loader says %q, want the compile error", got)
	}
	waitJS(t, b, "the snapshot is deleted", noneKept, 30*time.Second)

	// Reload, with app.wasm downloaded again, brings the app back.
	eval[bool](t, b, appCache+`.then((c) => c.delete("/web/app.wasm"))`)
	b.do(t, "reload from the failure", chromedp.Click(chromedp.CSS(`#app-wasm-loader button`)), chromedp.WaitVisible(liveList))
	keepsSnapshot(t, b, "stopper")

	// The Go program stops as it starts (a panic before the first render).
	eval[bool](t, b, `fetch("/test/stop.wasm").then((r) => `+appCache+`.then((c) => c.put("/web/app.wasm", r))).then(() => true)`)
	b.do(t, "reload with an app.wasm that stops", chromedp.Reload())
	waitJS(t, b, "the failure shows instead of the snapshot", failed, 60*time.Second)
	if got := eval[string](t, b, heldEarly); got != "stopper" {
		t.Errorf("the page held the snapshot of %q as it loaded, want stopper's", got)
	}
	if got := eval[string](t, b, label); got != "Kaiwa stopped as it started." {
		t.Errorf("the loader says %q, want that Kaiwa stopped", got)
	}
	waitJS(t, b, "the snapshot is deleted", noneKept, 30*time.Second)
	eval[bool](t, b, appCache+`.then((c) => c.delete("/web/app.wasm"))`)
	b.do(t, "reload from the failure", chromedp.Click(chromedp.CSS(`#app-wasm-loader button`)), chromedp.WaitVisible(liveList))
	keepsSnapshot(t, b, "stopper")

	// The download of app.wasm hangs: after the start's time limit the loader shows.
	eval[bool](t, b, appCache+`.then((c) => c.delete("/web/app.wasm"))`)
	k.hang.Store(true)
	b.do(t, "reload with a download that hangs", chromedp.Reload())
	waitJS(t, b, "the loader shows instead of the snapshot", loading, 60*time.Second)
	if got := eval[string](t, b, heldEarly); got != "stopper" {
		t.Errorf("the page held the snapshot of %q as it loaded, want stopper's", got)
	}
}

// TestBrowserSnapshotSignedOutInAnotherTab signs a user out in one tab while another tab of the
// same browser still shows their room list: that tab, showing the list again, does not write
// again the snapshot that signing out deleted, and its next load shows none. (Signing out ends
// the session of both tabs on the server, so the other tab's list cannot change any more; the
// tab does not write again the list it has already kept, and saveSnapshot also refuses a user
// who is no longer signed in here.)
func TestBrowserSnapshotSignedOutInAnotherTab(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	ts := startKaiwa(t)
	b := newBrowser(t, chromium)
	watchEarlyDocuments(t, b)
	register(t, b, ts.URL, "twotabs")
	b.do(t, "the room list", chromedp.WaitVisible(liveList))
	keepsSnapshot(t, b, "twotabs")
	other := secondTab(t, b)
	other.do(t, "the other tab shows the list", chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible(liveList))

	other.do(t, "sign out in the other tab", chromedp.Click(chromedp.CSS(`button[data-action="logout"]`)), chromedp.WaitVisible(loginForm))
	waitJS(t, b, "the snapshot is deleted", noneKept, 30*time.Second)

	// The first tab has not noticed: it shows its list again, which keeps the list for the next
	// load when the user is signed in. It must not write the snapshot (it counts the writes).
	eval[bool](t, b, `(() => {
		window.__snapshotPuts = 0;
		const put = Cache.prototype.put;
		Cache.prototype.put = function (req, ...rest) {
			if (String(req.url || req).includes("kaiwa-snapshot")) window.__snapshotPuts++;
			return put.call(this, req, ...rest);
		};
		return true;
	})()`)
	eval[bool](t, b, `(goappNav("/nope"), true)`)
	b.do(t, "the first tab leaves its list", chromedp.WaitVisible(chromedp.CSS(`[data-view="not-found"] a[href="/"]`)))
	// It may learn on the way that its session is over, and show the sign-in form instead.
	b.do(t, "and shows it again", chromedp.Click(chromedp.CSS(`[data-view="not-found"] a[href="/"]`)))
	waitJS(t, b, "the list or the sign-in form", `document.querySelector('[data-view="home"] ul.rooms li[data-room="general"] a, form[data-view="login"]')`, 60*time.Second)
	if pollJS(b, `window.__snapshotPuts > 0`, 3*time.Second) {
		t.Error("the first tab wrote the snapshot again after signing out")
	}
	waitJS(t, b, "the snapshot is still deleted", noneKept, 30*time.Second)
	b.do(t, "reload the first tab", chromedp.Reload(), chromedp.WaitVisible(loginForm))
	if e := eval[early](t, b, `window.__kaiwaEarly`); e.Present {
		t.Errorf("a load after signing out held a snapshot: %+v", e)
	}
}

// TestBrowserSnapshotSessionRevoked revokes a returning user's sessions on the server while
// none of their pages is open, as an administrator's revoke does: the next load shows the old
// snapshot until the server refuses the refresh, then the sign-in form, and the snapshot is
// deleted, so the load after shows none.
func TestBrowserSnapshotSessionRevoked(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	k := startCountingKaiwa(t)
	b := newBrowser(t, chromium)
	watchEarlyDocuments(t, b)
	register(t, b, k.URL, "revoked")
	b.do(t, "the room list", chromedp.WaitVisible(liveList))
	keepsSnapshot(t, b, "revoked")

	b.do(t, "leave the app", chromedp.Navigate("about:blank"))
	u, err := k.Store.UserByName("revoked")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Store.RevokeUserSessions(u.ID); err != nil {
		t.Fatal(err)
	}
	b.do(t, "come back", chromedp.Navigate(k.URL+"/"), chromedp.WaitVisible(loginForm))
	if e := eval[early](t, b, `window.__kaiwaEarly`); e.User != "revoked" || !e.Inert {
		t.Errorf("before app.wasm ran, the page held %+v, want the old inert snapshot", e)
	}
	waitJS(t, b, "the snapshot goes", `!document.querySelector(".snapshot")`, 30*time.Second)
	waitJS(t, b, "the snapshot is deleted", noneKept, 30*time.Second)
	b.do(t, "reload", chromedp.Reload(), chromedp.WaitVisible(loginForm))
	if e := eval[early](t, b, `window.__kaiwaEarly`); e.Present {
		t.Errorf("a load after the refused refresh held a snapshot: %+v", e)
	}
}

// noCookieStoreJS is a dedicated worker's script that runs the service worker's script, in a
// global scope without cookieStore (Chromium has it only in windows and service workers), as a
// service worker of Firefox or Safari has none. Asked, it answers the page of "/" with
// withSnapshot, as it is or with a cookieStore that finds the session hint cookie.
const noCookieStoreJS = `importScripts("/app-worker.js");
onmessage = async (e) => {
  const had = "cookieStore" in self;
  if (e.data.shim) {
    self.cookieStore = { get: async (name) => (name === "kaiwa_session" ? { name, value: "1" } : null) };
  }
  try {
    const page = new Response("<html><body><main>app</main></body></html>", { headers: { "Content-Type": "text/html" } });
    postMessage({ had, body: await (await withSnapshot(Promise.resolve(page))).text() });
  } catch (err) {
    postMessage({ had, error: String(err) });
  }
};
`

// askNoCookieStore starts the worker of noCookieStoreJS and asks it twice: without, then with
// the cookieStore.
const askNoCookieStore = `new Promise((done) => {
	const w = new Worker("/test/nocookiestore.js");
	const ask = (shim) => new Promise((answer) => { w.onmessage = (e) => answer(e.data); w.postMessage({ shim }); });
	ask(false).then((plain) => ask(true).then((shimmed) => { w.terminate(); done({ plain, shimmed }); }));
})`

type workerAnswer struct {
	Had   bool   `json:"had"`
	Body  string `json:"body"`
	Error string `json:"error"`
}

// TestBrowserWorkerWithoutCookieStore checks that a service worker without cookieStore answers
// the page of "/" as it is, without error, though a snapshot is kept and the session hint cookie
// is set: it cannot tell who is signed in. The same code given a cookieStore adds the snapshot,
// so the test would see the snapshot if the worker reached it another way.
func TestBrowserWorkerWithoutCookieStore(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	k := startFaultyKaiwa(t)
	b := newBrowser(t, chromium)
	register(t, b, k.URL, "nocookies")
	keepsSnapshot(t, b, "nocookies")
	got := eval[struct {
		Plain   workerAnswer `json:"plain"`
		Shimmed workerAnswer `json:"shimmed"`
	}](t, b, askNoCookieStore)
	const page = `<html><body><main>app</main></body></html>`
	if got.Plain.Had {
		t.Fatal("the dedicated worker has a cookieStore: it cannot stand for a browser without one")
	}
	if got.Plain.Error != "" || got.Plain.Body != page {
		t.Errorf("without cookieStore, the page of / is answered with %+v, want it as it is", got.Plain)
	}
	if !strings.Contains(got.Shimmed.Body, `data-snapshot="nocookies"`) {
		t.Errorf("with a cookieStore that finds the cookie, the page of / is %+v, want nocookies's snapshot in it", got.Shimmed)
	}
}
