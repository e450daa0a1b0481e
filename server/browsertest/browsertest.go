// Package browsertest starts the headless Chromium that Kaiwa's browser tests drive (Debian's, with
// --no-sandbox --disable-quic --disable-background-networking and a fresh profile), and decides
// what a test does when there is none: skip loudly, or fail when CI is set.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// NotRun skips a browser test with a loud message, or fails it when CI is set: in CI a missing
// browser or app.wasm is a broken machine, not a reason to pass.
func NotRun(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := "BROWSER TEST NOT RUN: " + fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		tb.Fatal(msg + " (CI is set, so this fails)")
	}
	tb.Skip(msg + " (set CI=1 to make this a failure)")
}

// Chromium returns the browser the tests drive: $KAIWA_CHROMIUM, Debian's /usr/bin/chromium,
// or one on $PATH. Without one the test does not run (see NotRun).
func Chromium(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("KAIWA_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	NotRun(tb, "no Chromium found (install Debian's chromium, or set KAIWA_CHROMIUM)")
	return ""
}

// StartChromium starts headless Chromium with a fresh profile and returns the context of its
// tab. The browser stops when the test ends; if the test failed, the page's console is logged.
// extra adds to the command line (chromedp.Flag), e.g. a host resolver rule.
func StartChromium(tb testing.TB, execPath string, extra ...chromedp.ExecAllocatorOption) context.Context {
	tb.Helper()
	profile, err := os.MkdirTemp("", "kaiwa-chromium-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		// Chromium's children may still write to the profile for a moment after it stops.
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-sync", true),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(opts, extra...)...)
	tb.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	tb.Cleanup(cancel)
	// The first run starts the browser; it must not carry a step's deadline.
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("start Chromium %s: %v", execPath, err)
	}
	var (
		mu    sync.Mutex
		lines []string
	)
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			mu.Lock()
			lines = append(lines, m.String())
			mu.Unlock()
		}
	}()
	tb.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if tb.Failed() && len(lines) > 0 {
			tb.Logf("browser console:\n\t%s", strings.Join(lines, "\n\t"))
		}
	})
	return ctx
}
