package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/debugger"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"kaiwa/public"
)

// chromium is where Debian installs the browser the web benchmark drives.
const chromium = "/usr/bin/chromium"

// webappRounds is how many fresh browser profiles the start-up figures are the median of.
const webappRounds = 5

// webappDwell is how long the visit before the warm loads stays open.
const webappDwell = 5 * time.Second

// webappScenario reports app.wasm's sizes as served, and the app's start-up in headless
// Chromium, cold (a browser that never ran the app: no caches, no service worker, no compiled
// app.wasm in its memory) and warm (the service worker and the HTTP
// cache filled by an earlier visit), signed in: to the room list with its rooms, and to a room
// whose socket is connected. Each start-up is split into the download of app.wasm, what is left
// of its compilation once the last byte is in, the Go runtime and package initialisation, and
// the app's first render. Each load also reports the page's total blocking time, measured by the
// page itself (long tasks, no debugger attached: what a person's browser does); the cold signed-out
// load is measured once more under the debugger, as Lighthouse runs it, for comparison.
func webappScenario(ctx context.Context, e *env) error {
	sizes := map[string]float64{}
	for _, name := range []string{"app.wasm", "app.wasm.gz", "app.wasm.br"} {
		info, err := fs.Stat(public.FS, "web/"+name)
		if err != nil {
			return fmt.Errorf("webapp: %s is not built into this binary: run make wasm, then make build", name)
		}
		sizes[name] = float64(info.Size())
	}
	row := Row{
		Scenario: "web app",
		Result: fmt.Sprintf("app.wasm %.2f MB raw, %.2f MB gzip, %.2f MB brotli",
			sizes["app.wasm"]/1e6, sizes["app.wasm.gz"]/1e6, sizes["app.wasm.br"]/1e6),
		Target:  "≤ 2.0 MB brotli, ≤ 2.6 MB gzip",
		Figures: map[string]float64{"raw_bytes": sizes["app.wasm"], "gzip_bytes": sizes["app.wasm.gz"], "brotli_bytes": sizes["app.wasm.br"]},
	}
	if _, err := os.Stat(chromium); err != nil {
		row.Result += "; start-up not measured: no Chromium at " + chromium
		e.add(row)
		return nil
	}
	srv, err := startServer(ctx, e.Binary)
	if err != nil {
		return err
	}
	defer srv.stop()
	var rounds []startupRound
	for i := range webappRounds {
		e.progress("webapp: start-up round %d of %d", i+1, webappRounds)
		r, err := startupRun(ctx, srv.URL)
		if err == nil {
			// The same cold load under the debugger, as Lighthouse measures it.
			r.signInDebugged, err = signInBlocking(ctx, srv.URL, true)
		}
		if err != nil {
			return err
		}
		rounds = append(rounds, r)
	}
	signIn := medianOf(rounds, func(r startupRound) float64 { return r.signIn.Content })
	blocking := medianOf(rounds, func(r startupRound) float64 { return r.signIn.Blocking.Blocking })
	longest := medianOf(rounds, func(r startupRound) float64 { return r.signIn.Blocking.Longest })
	debugged := medianOf(rounds, func(r startupRound) float64 { return r.signInDebugged.Blocking })
	row.Result += fmt.Sprintf("; sign-in form (cold, signed out) %.0f ms, total blocking time %.0f ms (longest task %.0f ms; %.0f ms under a debugger as Lighthouse attaches it)",
		signIn, blocking, longest, debugged)
	row.Target += "; start-up reported, blocking time ≤ 1 000 ms"
	row.Figures["first_render_ms"] = signIn
	row.Figures["sign_in_blocking_ms"] = blocking
	row.Figures["sign_in_longest_task_ms"] = longest
	row.Figures["sign_in_blocking_debugger_ms"] = debugged
	e.add(row)
	for _, warm := range []bool{false, true} {
		e.add(startupRow(rounds, warm))
	}
	return nil
}

// startupRow is the start-up row of the cold or the warm loads of every round, as medians.
func startupRow(rounds []startupRound, warm bool) Row {
	pick := func(r startupRound) (startupTimes, startupTimes) {
		if warm {
			return r.warmList, r.warmRoom
		}
		return r.coldList, r.coldRoom
	}
	list := func(f func(startupTimes) float64) float64 {
		return medianOf(rounds, func(r startupRound) float64 { l, _ := pick(r); return f(l) })
	}
	content := list(func(t startupTimes) float64 { return t.Content })
	// The snapshot counts only in the loads that showed one, and the row says in how many.
	var snaps, paints []float64
	for _, r := range rounds {
		if l, _ := pick(r); l.Snapshot > 0 {
			snaps = append(snaps, l.Snapshot)
			paints = append(paints, l.Paint)
		}
	}
	snapshot := "no snapshot"
	var snapshotMS float64
	if len(snaps) > 0 {
		slices.Sort(snaps)
		slices.Sort(paints)
		snapshotMS = snaps[len(snaps)/2]
		snapshot = fmt.Sprintf("room list shown (snapshot) %.0f ms, first paint %.0f ms, in %d of %d loads",
			snapshotMS, paints[len(paints)/2], len(snaps), len(rounds))
	}
	requested := list(func(t startupTimes) float64 { return t.Requested })
	download := list(func(t startupTimes) float64 { return t.Downloaded })
	compile := list(func(t startupTimes) float64 { return t.Instantiated - t.Downloaded })
	init := list(func(t startupTimes) float64 { return t.Main - t.Instantiated })
	render := list(func(t startupTimes) float64 { return t.Content - t.Main })
	connected := medianOf(rounds, func(r startupRound) float64 { _, room := pick(r); return room.Connected })
	blocking := list(func(t startupTimes) float64 { return t.Blocking.Blocking })
	longest := list(func(t startupTimes) float64 { return t.Blocking.Longest })
	name, target := "web app start-up, first visit", "room list ≤ 1 500 ms"
	if warm {
		name, target = "web app start-up, returning", "room list ≤ 700 ms"
	}
	return Row{
		Scenario: name,
		Result: fmt.Sprintf("%s; room list live %.0f ms (app.wasm asked at %.0f, in at %.0f, compiled %.0f after, Go init %.0f, render %.0f), total blocking time %.0f ms (longest task %.0f), room connected %.0f ms (median of %d)",
			snapshot, content, requested, download, compile, init, render, blocking, longest, connected, len(rounds)),
		Target: target,
		Figures: map[string]float64{"room_list_snapshot_ms": snapshotMS, "room_list_ms": content, "wasm_requested_ms": requested, "download_ms": download, "compile_after_download_ms": compile,
			"init_ms": init, "render_ms": render, "connected_ms": connected, "blocking_ms": blocking, "longest_task_ms": longest},
	}
}

func medianOf(rounds []startupRound, f func(startupRound) float64) float64 {
	v := make([]float64, len(rounds))
	for i, r := range rounds {
		v[i] = f(r)
	}
	return median(v)
}

// median is the middle of v (the upper middle of an even count), or 0 for none; v is sorted
// in place.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// startupProbe runs in every page before the page's own scripts. It notes, in milliseconds since
// the navigation began, when app.wasm was compiled and instantiated, when the page first held the
// room list's snapshot (put there by the service worker, before the app runs), when the live app
// first showed content (the sign-in form, the room list with a room, a room; the snapshot has
// none of the attributes these selectors need) and a connected room.
const startupProbe = `(() => {
  const t = window.kaiwaStartup = {};
  const instantiate = WebAssembly.instantiateStreaming;
  WebAssembly.instantiateStreaming = function (...args) {
    return instantiate.apply(this, args).then((r) => { t.instantiated = performance.now(); return r; });
  };
  const watch = {
    snapshot: 'body > .snapshot ul.rooms li',
    content: 'input[name="username"], ul.rooms li[data-room], section.room[data-view="room"]',
    connected: '[role="status"][data-state="connected"]',
  };
  const check = () => {
    for (const [key, selector] of Object.entries(watch)) {
      if (t[key] === undefined && document.querySelector(selector)) t[key] = performance.now();
    }
  };
  new MutationObserver(check).observe(document, { subtree: true, childList: true, attributes: true });
  t.longTasks = [];
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) t.longTasks.push([e.startTime, e.duration]);
    }).observe({ type: "longtask", buffered: true });
  } catch (e) {}
})()`

// startupBlocking waits until the page has run a second without a long task (ten at most), then
// returns its total blocking time as Lighthouse defines it: over the main thread's tasks of more
// than 50 ms, the sum of what each lasted beyond 50 ms after the first contentful paint; with
// the longest task and how many there were.
const startupBlocking = `new Promise((resolve) => {
  const t = window.kaiwaStartup || {};
  const begun = performance.now();
  const settle = () => {
    const tasks = t.longTasks || [];
    const last = Math.max(begun, ...tasks.map(([s, d]) => s + d));
    const now = performance.now();
    if (now - last < 1000 && now - begun < 10000) {
      setTimeout(settle, 100);
      return;
    }
    const paint = performance.getEntriesByName("first-contentful-paint")[0];
    const from = paint ? paint.startTime : 0;
    let blocking = 0, longest = 0;
    for (const [s, d] of tasks) {
      const counted = s + d - Math.max(s, from);
      if (counted > 50) blocking += counted - 50;
      longest = Math.max(longest, d);
    }
    resolve(JSON.stringify({ blocking, longest, tasks: tasks.length }));
  };
  settle();
})`

// blockingTime is one load's total blocking time (startupBlocking) in milliseconds.
type blockingTime struct {
	Blocking float64 `json:"blocking"`
	Longest  float64 `json:"longest"`
	Tasks    float64 `json:"tasks"`
}

// measureBlocking waits for the page in ctx to settle and reads its blocking time.
func measureBlocking(ctx context.Context) (blockingTime, error) {
	var b blockingTime
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](startupBlocking, chromedp.EvalAwaitPromise))
	if err == nil {
		err = json.Unmarshal([]byte(raw), &b)
	}
	return b, err
}

// startupCollect reads what startupProbe noted, with the end of app.wasm's download and the mark
// wasm/main.go sets when main begins, once the page has shown what the load waits for.
const startupCollect = `(() => {
  const t = window.kaiwaStartup || {};
  const wasm = performance.getEntriesByType("resource").find((e) => e.name.endsWith("/web/app.wasm"));
  const main = performance.getEntriesByName("kaiwa-main")[0];
  const paint = performance.getEntriesByName("first-contentful-paint")[0];
  return JSON.stringify({
    requested: wasm ? wasm.startTime : 0, downloaded: wasm ? wasm.responseEnd : 0, instantiated: t.instantiated || 0,
    main: main ? main.startTime : 0, snapshot: t.snapshot || 0, paint: paint ? paint.startTime : 0, content: t.content || 0, connected: t.connected || 0,
  });
})()`

// startupTimes are one page load's moments, in milliseconds since its navigation began.
type startupTimes struct {
	Requested    float64      `json:"requested"`
	Downloaded   float64      `json:"downloaded"`
	Instantiated float64      `json:"instantiated"`
	Main         float64      `json:"main"`
	Snapshot     float64      `json:"snapshot"` // 0: the page held no snapshot
	Paint        float64      `json:"paint"`    // the first contentful paint
	Content      float64      `json:"content"`
	Connected    float64      `json:"connected"`
	Blocking     blockingTime `json:"-"` // the long tasks until the page settled, after Content
}

// startupRound is one fresh browser profile's loads.
type startupRound struct {
	signIn             startupTimes // signed out, cold: /login to the sign-in form
	signInDebugged     blockingTime // the same load, in a profile of its own, under the debugger
	coldList, coldRoom startupTimes // signed in, each in a browser that never ran the app
	warmList, warmRoom startupTimes // signed in, the service worker installed and its cache filled
}

// startupBrowser starts headless Chromium with a new, empty profile, its first tab running
// startupProbe in every page; stop ends it and removes the profile.
func startupBrowser(ctx context.Context) (bctx context.Context, stop func(), err error) {
	profile, err := os.MkdirTemp("", "kaiwa-bench-chromium-")
	if err != nil {
		return nil, nil, err
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(profile),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-extensions", true))
	bctx, cancel := chromedp.NewContext(allocCtx)
	stop = func() {
		cancel()
		cancelAlloc()
		os.RemoveAll(profile)
	}
	if err := chromedp.Do(bctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: startupProbe})
		return err
	})); err != nil {
		stop()
		return nil, nil, fmt.Errorf("webapp: start Chromium: %w", err)
	}
	return bctx, stop, nil
}

// signInBlocking loads /login signed out in a new browser profile and returns its blocking
// time. With debugging, the page runs under the debugger as Lighthouse attaches it for its
// whole load (Debugger.enable, setSkipAllPauses, setAsyncCallStackDepth 8, before the
// navigation): V8 then compiles app.wasm for debugging, without its optimising tier.
func signInBlocking(ctx context.Context, base string, debugging bool) (blockingTime, error) {
	bctx, stop, err := startupBrowser(ctx)
	if err != nil {
		return blockingTime{}, err
	}
	defer stop()
	tctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	if debugging {
		if err := chromedp.Do(tctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			if _, err := cdp.Call(ctx, t, debugger.Enable, debugger.EnableParams{}); err != nil {
				return err
			}
			if _, err := cdp.Call(ctx, t, debugger.SetSkipAllPauses, debugger.SetSkipAllPausesParams{Skip: true}); err != nil {
				return err
			}
			_, err := cdp.Call(ctx, t, debugger.SetAsyncCallStackDepth, debugger.SetAsyncCallStackDepthParams{MaxDepth: 8})
			return err
		})); err != nil {
			return blockingTime{}, fmt.Errorf("webapp: attach the debugger: %w", err)
		}
	}
	if err := chromedp.Do(tctx, chromedp.Navigate(base+"/login"), chromedp.WaitVisible(`input[name="username"]`)); err != nil {
		return blockingTime{}, fmt.Errorf("webapp: load /login: %w", err)
	}
	return measureBlocking(tctx)
}

// loadTimes navigates to path, waits for wait to be visible and reads the page's clocks.
func loadTimes(tctx context.Context, base, path, wait string) (startupTimes, error) {
	var t startupTimes
	err := chromedp.Do(tctx, chromedp.Navigate(base+path), chromedp.WaitVisible(wait))
	var raw string
	if err == nil {
		raw, err = chromedp.Run(tctx, chromedp.Evaluate[string](startupCollect))
	}
	if err == nil {
		err = json.Unmarshal([]byte(raw), &t)
	}
	if err == nil {
		t.Blocking, err = measureBlocking(tctx)
	}
	if err != nil {
		return t, fmt.Errorf("webapp: load %s until %s: %w", path, wait, err)
	}
	return t, nil
}

// coldVisit loads path in a new browser profile, signed in as user: it signs in from a page of
// the server that runs no app (robots.txt), so the load of path is the first to run app.wasm in
// that browser.
func coldVisit(ctx context.Context, base, user, path, wait string) (startupTimes, error) {
	bctx, stop, err := startupBrowser(ctx)
	if err != nil {
		return startupTimes{}, err
	}
	defer stop()
	tctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(base+"/robots.txt")); err != nil {
		return startupTimes{}, fmt.Errorf("webapp: open robots.txt: %w", err)
	}
	login := fmt.Sprintf(`fetch("/api/auth/login", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({username: %q, password: %q})}).then(r => r.status)`, user, benchPassword)
	status, err := chromedp.Run(tctx, chromedp.Evaluate[int](login, chromedp.EvalAwaitPromise))
	if err != nil || status != 200 {
		return startupTimes{}, fmt.Errorf("webapp: sign in from robots.txt: status %d: %v", status, err)
	}
	return loadTimes(tctx, base, path, wait)
}

// benchPassword is the password of the users the start-up loads register.
const benchPassword = "bench-password"

// startupRun opens the app in a new browser profile: signed out, then signed in after a
// registration in the page, cold and then warm.
func startupRun(ctx context.Context, base string) (startupRound, error) {
	var round startupRound
	bctx, stop, err := startupBrowser(ctx)
	if err != nil {
		return round, err
	}
	defer stop()
	tctx, cancelT := context.WithTimeout(bctx, 120*time.Second)
	defer cancelT()

	load := func(path, wait string) (startupTimes, error) { return loadTimes(tctx, base, path, wait) }
	const (
		signInForm = `input[name="username"]`
		roomList   = `ul.rooms li[data-room]`
		connected  = `[role="status"][data-state="connected"]`
	)
	if round.signIn, err = load("/login", signInForm); err != nil {
		return round, err
	}
	name := fmt.Sprintf("start%d", time.Now().UnixNano()%1_000_000_000)
	register := fmt.Sprintf(`fetch("/api/auth/register", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({username: %q, password: %q})}).then(r => r.status)`, name, benchPassword)
	status, err := chromedp.Run(tctx, chromedp.Evaluate[int](register, chromedp.EvalAwaitPromise))
	if err != nil || status != 201 {
		return round, fmt.Errorf("webapp: register in the page: status %d: %v", status, err)
	}
	// Cold: a signed-in visit from a browser that never ran the app. A browser of its own for
	// each: clearing the caches of this one would leave V8's compiled app.wasm in its memory.
	for _, step := range []struct {
		path, wait string
		into       *startupTimes
	}{{"/", roomList, &round.coldList}, {"/rooms/general", connected, &round.coldRoom}} {
		if *step.into, err = coldVisit(ctx, base, name, step.path, step.wait); err != nil {
			return round, err
		}
	}
	// Warm: the worker of the last load installs and fills its cache; one visit more, which
	// stays open a few seconds as a person's would (the browser may write its compiled-code
	// cache of app.wasm meanwhile), lets it control the page.
	if _, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`navigator.serviceWorker.ready.then(() => true)`, chromedp.EvalAwaitPromise)); err != nil {
		return round, fmt.Errorf("webapp: service worker: %w", err)
	}
	if _, err := load("/", roomList); err != nil {
		return round, err
	}
	select {
	case <-time.After(webappDwell):
	case <-tctx.Done():
		return round, tctx.Err()
	}
	if round.warmList, err = load("/", roomList); err != nil {
		return round, err
	}
	if round.warmRoom, err = load("/rooms/general", connected); err != nil {
		return round, err
	}
	return round, nil
}
