package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/chromedp/chromedp"

	"kaiwa/public"
)

// chromium is where Debian installs the browser the web benchmark drives.
const chromium = "/usr/bin/chromium"

// webappScenario reports app.wasm's sizes as served, and the cold start of the app in headless
// Chromium: to the first render of the wasm app, and to a connected room.
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
		row.Result += "; cold start not measured: no Chromium at " + chromium
		e.add(row)
		return nil
	}
	srv, err := startServer(ctx, e.Binary)
	if err != nil {
		return err
	}
	defer srv.stop()
	var firstRender, connected []time.Duration
	for range 3 {
		fr, conn, err := coldStart(ctx, srv.URL)
		if err != nil {
			return err
		}
		firstRender, connected = append(firstRender, fr), append(connected, conn)
	}
	fr, conn := median(firstRender), median(connected)
	row.Result += fmt.Sprintf("; cold start (median of 3, empty cache): first render %s, room connected %s", ms(fr), ms(conn))
	row.Target += "; cold start reported"
	row.Figures["first_render_ms"], row.Figures["connected_ms"] = msf(fr), msf(conn)
	e.add(row)
	return nil
}

// coldStart opens the app in a new browser profile twice: signed out until the sign-in form is
// rendered by the wasm app, then signed in until a room shows connected.
func coldStart(ctx context.Context, base string) (firstRender, connected time.Duration, err error) {
	profile, err := os.MkdirTemp("", "kaiwa-bench-chromium-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(profile)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(profile),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-extensions", true))
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	if err := chromedp.Do(bctx); err != nil {
		return 0, 0, fmt.Errorf("webapp: start Chromium: %w", err)
	}
	tctx, cancelT := context.WithTimeout(bctx, 60*time.Second)
	defer cancelT()

	start := time.Now()
	// The server's HTML shows a loading view; the form is the wasm app's first render.
	if err := chromedp.Do(tctx, chromedp.Navigate(base+"/login"), chromedp.WaitVisible(`input[name="username"]`)); err != nil {
		return 0, 0, fmt.Errorf("webapp: first render: %w", err)
	}
	firstRender = time.Since(start)

	name := fmt.Sprintf("cold%d", time.Now().UnixNano()%1_000_000_000)
	register := fmt.Sprintf(`fetch("/api/auth/register", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({username: %q, password: "bench-password"})}).then(r => r.status)`, name)
	status, err := chromedp.Run(tctx, chromedp.Evaluate[int](register, chromedp.EvalAwaitPromise))
	if err != nil || status != 201 {
		return 0, 0, fmt.Errorf("webapp: register in the page: status %d: %v", status, err)
	}
	// A second profile-fresh page load is not possible without losing the cookie, so clear the
	// HTTP cache and the service worker's caches instead.
	if _, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`caches.keys().then(ks => Promise.all(ks.map(k => caches.delete(k)))).then(() => true)`, chromedp.EvalAwaitPromise)); err != nil {
		return 0, 0, fmt.Errorf("webapp: clear caches: %w", err)
	}
	start = time.Now()
	if err := chromedp.Do(tctx, chromedp.Navigate(base+"/rooms/general"),
		chromedp.WaitVisible(`[role="status"][data-state="connected"]`)); err != nil {
		return 0, 0, errors.Join(errors.New("webapp: room never showed connected"), err)
	}
	return firstRender, time.Since(start), nil
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}
