package browser_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserTwoTabs opens one user's room in two tabs of one browser, which share the refresh
// cookie, with access tokens of 3 s: the tabs refresh again and again, one after the other
// (Web Locks), and both stay signed in and connected, each showing every message once.
func TestBrowserTwoTabs(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	const ttl = 3 * time.Second
	k := startRestartable(t, ttl)
	first := newBrowser(t, chromium)
	register(t, first, k.URL(), "tabby")

	tabCtx, closeTab := chromedp.NewContext(first.ctx) // a second tab of the same browser
	t.Cleanup(closeTab)
	if err := chromedp.Do(tabCtx); err != nil {
		t.Fatalf("open a second tab: %v", err)
	}
	second := &browser{ctx: tabCtx}
	room := k.URL() + "/rooms/general"
	for _, b := range []*browser{first, second} {
		b.do(t, "open the room", chromedp.Navigate(room), chromedp.WaitVisible(chromedp.CSS(`[role="log"]`)))
		waitJS(t, b, "connected", connected, 30*time.Second)
	}

	// Five token lifetimes: each tab refreshes several times on the same cookie family.
	start := time.Now()
	sent := 0
	for i := 0; time.Since(start) < 5*ttl; i++ {
		b := []*browser{first, second}[i%2]
		send(t, b, "tab message "+strconv.Itoa(i))
		sent++
		time.Sleep(700 * time.Millisecond)
	}
	for i, b := range []*browser{first, second} {
		who := "tab " + strconv.Itoa(i+1)
		waitJS(t, b, who+" shows every message", `document.querySelectorAll('[role="log"] [data-seq]').length >= `+strconv.Itoa(sent)+
			` && !document.querySelector('[role="log"] [data-pending]')`, 30*time.Second)
		checkOnce(t, who, shown(t, b), sent)
		// A socket may be between tokens at any one instant; it must come back to connected.
		waitJS(t, b, who+" connected after the rotations", connected, 15*time.Second)
		if n := eval[int](t, b, `document.querySelectorAll('input[name="password"]').length`); n != 0 {
			t.Errorf("%s: shows a password field: the session was lost", who)
		}
	}
	// The session is still good for a new page load.
	ctx, cancel := context.WithTimeout(first.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`[role="log"]`))); err != nil {
		t.Fatalf("reload: %v", err)
	}
	waitJS(t, first, "connected after reload", connected, 30*time.Second)
}
