package web

import (
	"context"
	"io/fs"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/chromedp/chromedp"

	"kaiwa/public"
	"kaiwa/server/browsertest"
)

// TestBrowserOffersUpdate deploys a new version under a page that runs the old one, in headless
// Chromium, and checks that the app offers a reload, that the reload brings the new version,
// and that a first visit is not taken for an update. It needs no API: without one the app
// shows the sign-in form. Like the server's browser test, it skips loudly without Chromium or
// app.wasm, and fails when CI is set.
func TestBrowserOffersUpdate(t *testing.T) {
	chromium := browsertest.Chromium(t)
	v1 := copyWebRoot(t)
	v2 := copyWebRoot(t)
	v2["kaiwa.css"] = &fstest.MapFile{Data: append(v2["kaiwa.css"].Data, "\n/* the next version */\n"...)}
	h1, err := newHandler(v1, discard())
	if err != nil {
		t.Fatal(err)
	}
	h2, err := newHandler(v2, discard())
	if err != nil {
		t.Fatal(err)
	}
	if h1.pages.Version == h2.pages.Version {
		t.Fatal("both versions have the same version string")
	}
	var deployed atomic.Pointer[handler]
	deployed.Store(h1)
	ts := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deployed.Load().ServeHTTP(w, r)
	}))

	ctx := browsertest.StartChromium(t, chromium)
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		v, err := chromedp.Run(sctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}
	signIn := chromedp.CSS(`form[data-view="login"] input[name="password"]`)
	offer := chromedp.CSS(`.update button`)
	const (
		// activated resolves once the worker has finished activating.
		activated = `navigator.serviceWorker.ready.then((r) => r.active.state === "activated" ? "activated" :
			new Promise((done) => r.active.addEventListener("statechange", () => { if (r.active.state === "activated") done("activated") })))`
		// settle gives the page a moment to react to what just happened.
		settle  = `new Promise((done) => setTimeout(() => done(document.querySelector(".update button") ? "offered" : "none"), 500))`
		version = `goappGetenv("GOAPP_VERSION")`
	)

	run("first visit", chromedp.Navigate(ts.URL+"/login"), chromedp.WaitVisible(signIn))
	eval(activated)
	if got := eval(settle); got != "none" {
		t.Error("the first install was offered as an update")
	}
	if got := eval(version); got != h1.pages.Version {
		t.Fatalf("first visit runs version %s, want %s", got, h1.pages.Version)
	}

	deployed.Store(h2)
	// The page comes from the old version's cache; the browser finds the new worker meanwhile.
	run("visit after the deploy", chromedp.Reload(), chromedp.WaitVisible(signIn), chromedp.WaitVisible(offer))
	if got := eval(version); got != h1.pages.Version {
		t.Errorf("before reloading, the page runs version %s, want the old %s", got, h1.pages.Version)
	}
	run("accept the update", chromedp.Click(offer), chromedp.WaitVisible(signIn))
	// Click reloads without waiting: wait until the new page runs.
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := chromedp.Run(sctx, chromedp.Poll[bool](`typeof goappGetenv === "function" && goappGetenv("GOAPP_VERSION") === "`+h2.pages.Version+`"`)); err != nil {
		t.Fatalf("after the update the page does not run version %s: %v", h2.pages.Version, err)
	}
	run("new version loaded", chromedp.WaitVisible(signIn))
	if got := eval(settle); got != "none" {
		t.Error("the new version offers itself as an update again")
	}
}

// copyWebRoot copies the embedded web root into a map that a test may change, once app.wasm is
// built.
func copyWebRoot(t *testing.T) fstest.MapFS {
	t.Helper()
	root, err := fs.Sub(public.FS, "web")
	if err != nil {
		t.Fatal(err)
	}
	m := fstest.MapFS{}
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(root, name)
		m[name] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if m["app.wasm"] == nil {
		browsertest.NotRun(t, "public/web/app.wasm is not built; run make wasm")
	}
	return m
}
