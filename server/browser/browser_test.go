package browser_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"kaiwa/server"
	"kaiwa/server/browsertest"
	"kaiwa/server/servertest"
)

// The browser tests drive headless Chromium against a whole Kaiwa server, with the app.wasm
// that `make wasm` built. Without Chromium or app.wasm they skip loudly, and fail when CI is set.
// Each starts its own server and Chromium, so they run in parallel (t.Parallel) with each other
// and with the package's other parallel tests.

// requireBrowserPrereqs returns Chromium's path once it and app.wasm are there.
func requireBrowserPrereqs(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join("..", "..", "public", "web", "app.wasm")); err != nil {
		browsertest.NotRun(t, "public/web/app.wasm is not built; run make wasm (%v)", err)
	}
	return browsertest.Chromium(t)
}

// startKaiwa serves a whole Kaiwa over a fresh database for the length of the test, logging
// warnings to the test.
func startKaiwa(t *testing.T) *httptest.Server {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	return servertest.Start(t, server.Config{
		AccessTTL:     10 * time.Minute,
		RefreshTTL:    720 * time.Hour,
		Registration:  true,
		SecureCookies: "never",
	}, logger).Server
}

// browser is one headless Chromium tab. Its console goes to the test log when the test fails.
type browser struct {
	ctx context.Context
}

// newBrowser starts Chromium with a fresh profile, stopped at the end of the test.
func newBrowser(t *testing.T, execPath string) *browser {
	t.Helper()
	return &browser{ctx: browsertest.StartChromium(t, execPath)}
}

// do runs steps within a deadline that covers loading and compiling app.wasm while other
// browser tests, which run in parallel, do the same.
func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 120*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page, waiting for it when it is a promise.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// watchForms is evaluated in every new document before the page's scripts. It records whether
// a password field is ever attached to the document, however briefly, and which views of the
// app (data-view) appeared.
const watchForms = `(() => {
	window.__kaiwaPasswordSeen = false;
	window.__kaiwaViews = [];
	const look = (node) => {
		if (node.nodeType !== Node.ELEMENT_NODE) return;
		if (node.matches('input[name="password"]') || node.querySelector('input[name="password"]')) {
			window.__kaiwaPasswordSeen = true;
		}
		for (const el of [node, ...node.querySelectorAll('[data-view]')]) {
			if (el.dataset && el.dataset.view) window.__kaiwaViews.push(el.dataset.view);
		}
	};
	new MutationObserver((records) => {
		for (const r of records) r.addedNodes.forEach(look);
	}).observe(document, {childList: true, subtree: true});
})();`

// watchNewDocuments runs watchForms in each document the tab loads from now on.
func watchNewDocuments() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: watchForms})
		return err
	})
}

// selectText selects the text of the input that a CSS selector finds.
func selectText(selector string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`(() => { document.querySelector(`+strconv.Quote(selector)+`).select(); return true })()`)(ctx, t)
		return err
	})
}

// TestBrowserSessionSurvivesReload registers through the /register page, reloads, and checks
// that the signed-in view comes back without the login form ever appearing; then it signs out
// and in again through the forms.
func TestBrowserSessionSurvivesReload(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	ts := startKaiwa(t)
	b := newBrowser(t, chromium)

	const (
		name     = "alice"
		password = "correct horse battery"
	)
	signedIn := chromedp.CSS(`[data-view="home"] [data-user="` + name + `"]`)

	b.do(t, "register through /register",
		chromedp.Navigate(ts.URL+"/register"),
		chromedp.WaitVisible(chromedp.CSS(`form[data-view="register"] input[name="username"]`)),
		chromedp.SendKeys(chromedp.CSS(`form[data-view="register"] input[name="username"]`), name),
		chromedp.SendKeys(chromedp.CSS(`form[data-view="register"] input[name="password"]`), password),
		chromedp.Click(chromedp.CSS(`form[data-view="register"] button[type="submit"]`)),
		chromedp.WaitVisible(signedIn),
		// The database starts with the room general.
		chromedp.WaitVisible(chromedp.CSS(`ul.rooms li[data-room="general"] a[href="/rooms/general"]`)),
	)
	if path := eval[string](t, b, `location.pathname`); path != "/" {
		t.Errorf("after registering the app is at %s, want /", path)
	}
	if stored := eval[string](t, b, `JSON.stringify(Object.assign({}, localStorage)) + JSON.stringify(Object.assign({}, sessionStorage))`); strings.Contains(stored, "eyJ") {
		t.Errorf("a token is in web storage: %s", stored)
	}

	b.do(t, "create a room, which opens it",
		chromedp.SendKeys(chromedp.CSS(`form.create-room input[name="room"]`), "random-talk"),
		chromedp.Click(chromedp.CSS(`form.create-room button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-view="room"][data-room="random-talk"]`)),
		chromedp.Click(chromedp.CSS(`header a[href="/"]`)),
		chromedp.WaitVisible(chromedp.CSS(`ul.rooms li[data-room="random-talk"] a[href="/rooms/random-talk"]`)),
	)
	if v := eval[string](t, b, `document.querySelector('form.create-room input[name="room"]').value`); v != "" {
		t.Errorf("the new room's field still holds %q", v)
	}
	b.do(t, "create a badly named room",
		chromedp.SendKeys(chromedp.CSS(`form.create-room input[name="room"]`), "Bad Name"),
		chromedp.Click(chromedp.CSS(`form.create-room button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form.create-room [role="alert"]`)),
	)
	if msg := eval[string](t, b, `document.querySelector('form.create-room [role="alert"]').textContent`); !strings.Contains(msg, "Room names have") {
		t.Errorf("error shown for a bad room name: %q", msg)
	}

	// With the worker active, the reload below is answered from its cache, as later visits are.
	if !eval[bool](t, b, `navigator.serviceWorker.ready.then(() => true)`) {
		t.Fatal("no service worker became active")
	}
	b.do(t, "reload while signed in",
		watchNewDocuments(),
		chromedp.Reload(),
		chromedp.WaitVisible(signedIn),
	)
	if !eval[bool](t, b, `navigator.serviceWorker.controller !== null`) {
		t.Error("the service worker does not control the reloaded page")
	}
	if eval[bool](t, b, `window.__kaiwaPasswordSeen`) {
		t.Errorf("the login form appeared while a signed-in user reloaded; views seen: %v", eval[[]string](t, b, `window.__kaiwaViews`))
	}
	if views := eval[[]string](t, b, `window.__kaiwaViews`); !slices.Contains(views, "home") {
		t.Errorf("the watcher saw views %v, not the signed-in one: it did not watch the reload", views)
	}

	b.do(t, "sign out",
		chromedp.Click(chromedp.CSS(`button[data-action="logout"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[data-view="login"] input[name="password"]`)),
	)
	if !eval[bool](t, b, `window.__kaiwaPasswordSeen`) {
		t.Error("the watcher missed the login form after signing out: it cannot catch a flash")
	}

	b.do(t, "sign in with a wrong password",
		chromedp.SendKeys(chromedp.CSS(`form[data-view="login"] input[name="username"]`), name),
		chromedp.SendKeys(chromedp.CSS(`form[data-view="login"] input[name="password"]`), "not the password"),
		chromedp.Click(chromedp.CSS(`form[data-view="login"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[data-view="login"] [role="alert"]`)),
	)
	if msg := eval[string](t, b, `document.querySelector('form[data-view="login"] [role="alert"]').textContent`); !strings.Contains(msg, "Wrong username or password") {
		t.Errorf("error shown for a wrong password: %q", msg)
	}

	b.do(t, "sign in",
		selectText(`form[data-view="login"] input[name="password"]`), // typing replaces it
		chromedp.SendKeys(chromedp.CSS(`form[data-view="login"] input[name="password"]`), password),
		chromedp.Click(chromedp.CSS(`form[data-view="login"] button[type="submit"]`)),
		chromedp.WaitVisible(signedIn),
	)

	// With the server gone, a page never visited before still loads: the worker answers with the
	// cached shell, and the room says it is offline instead of asking to sign in.
	ts.Close()
	b.do(t, "load a room's page with the server down",
		chromedp.Navigate(ts.URL+"/rooms/general"),
		chromedp.WaitVisible(chromedp.CSS(`[data-view="room"] [role="status"][data-state="offline"]`)),
	)
	if eval[bool](t, b, `window.__kaiwaPasswordSeen`) {
		t.Error("the login form appeared while the server was unreachable")
	}
}
