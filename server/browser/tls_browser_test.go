package browser_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/security"
	"github.com/chromedp/chromedp"

	"kaiwa/server"
	"kaiwa/server/browsertest"
	"kaiwa/server/servertest"
	"kaiwa/server/setup"
	"kaiwa/server/store/storetest"
	"kaiwa/server/tlsca"
)

// testHost is the name the browser tests give the server: not localhost, which browsers treat
// as a secure context even over plain HTTP. Chromium maps it to the loopback address.
const testHost = "kaiwa.test"

// tlsKaiwa is a whole Kaiwa served over HTTPS with a certificate from its own authority.
type tlsKaiwa struct {
	url  string // https://kaiwa.test:PORT
	auth *tlsca.Authority
	stop func()
}

// startTLSKaiwa serves Kaiwa over HTTPS, as `kaiwa serve -tls-self kaiwa.test` does, on a
// loopback port, until stop or the end of the test.
func startTLSKaiwa(t *testing.T) *tlsKaiwa {
	t.Helper()
	st := storetest.Open(t)
	a, err := tlsca.Open(st, []string{testHost}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	url := "https://" + testHost + ":" + port
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := server.New(server.Config{
		Registration: true, SecureCookies: "always",
		Setup: setup.Config{CACert: a.CACert(), Fingerprint: a.Fingerprint(), Addresses: []string{url + "/"}},
	}, st, logger)
	if err != nil {
		t.Fatal(err)
	}
	hs := server.HTTPServer(ln.Addr().String(), srv.Handler(), logger)
	hs.TLSConfig = tlsca.Config(a.GetCertificate)
	go func() {
		if err := hs.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			srv.Close()
			hs.Close()
		})
	}
	t.Cleanup(stop)
	return &tlsKaiwa{url: url, auth: a, stop: stop}
}

// spkiHash is what Chromium's --ignore-certificate-errors-spki-list takes: the base64 SHA-256 of
// a certificate's public key. With the server certificate's, Chromium trusts the server as a
// device that installed the authority would.
func spkiHash(k *tlsKaiwa) string {
	sum := sha256.Sum256(k.auth.Leaf().RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// TestBrowserTLSSelf opens Kaiwa over HTTPS at a name other than localhost, as a phone on a
// LAN does once it trusts Kaiwa's authority: the page is a secure context, the service worker
// installs, no notice about HTTPS is shown, a signed-in user chats over wss:// and stays signed
// in across a reload, and with the server gone the app still loads.
func TestBrowserTLSSelf(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	k := startTLSKaiwa(t)
	b := &browser{ctx: browsertest.StartChromium(t, chromium,
		chromedp.Flag("host-resolver-rules", "MAP "+testHost+" 127.0.0.1"),
		chromedp.Flag("ignore-certificate-errors-spki-list", spkiHash(k)),
	)}

	b.do(t, "open the app over HTTPS",
		chromedp.Navigate(k.url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`form[data-view="login"] input[name="username"]`)),
	)
	if !eval[bool](t, b, `window.isSecureContext`) {
		t.Fatal("the app over HTTPS with a trusted certificate is not a secure context")
	}
	if !eval[bool](t, b, `navigator.serviceWorker.ready.then((r) => r.active !== null)`) {
		t.Fatal("no service worker became active")
	}
	if !eval[bool](t, b, `document.querySelector('[data-notice="insecure"]') !== null && document.querySelector('[data-notice="insecure"] p') === null`) {
		t.Error("the insecure-context notice shows on a secure page")
	}

	// Signed in over HTTPS, the Secure refresh cookie and the wss:// socket work.
	b.do(t, "register and open a room",
		chromedp.Navigate(k.url+"/register"),
		chromedp.WaitVisible(chromedp.CSS(`form[data-view="register"] input[name="username"]`)),
		chromedp.SendKeys(chromedp.CSS(`form[data-view="register"] input[name="username"]`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`form[data-view="register"] input[name="password"]`), "correct horse battery"),
		chromedp.Click(chromedp.CSS(`form[data-view="register"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-view="home"] [data-user="alice"]`)),
		chromedp.Navigate(k.url+"/rooms/general"),
		chromedp.WaitVisible(chromedp.CSS(`[role="status"][data-state="connected"]`)),
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`[role="status"][data-state="connected"]`)),
	)

	b.do(t, "open /setup",
		chromedp.Navigate(k.url+"/setup"),
		chromedp.WaitVisible(chromedp.CSS(`[data-fingerprint]`)),
	)
	if got := eval[string](t, b, `document.querySelector('[data-fingerprint]').textContent`); got != k.auth.Fingerprint() {
		t.Errorf("/setup shows fingerprint %q, want %q", got, k.auth.Fingerprint())
	}
	if got := eval[int](t, b, `document.querySelectorAll('figure svg').length`); got != 1 {
		t.Errorf("/setup shows %d QR codes, want 1", got)
	}

	// With the server gone, the worker answers from its cache: the room's page loads and says
	// it is offline.
	k.stop()
	b.do(t, "load the app with the server down",
		chromedp.Navigate(k.url+"/rooms/general"),
		chromedp.WaitVisible(chromedp.CSS(`[data-view="room"] [role="status"][data-state="offline"]`)),
	)
	if !eval[bool](t, b, `window.isSecureContext && navigator.serviceWorker.controller !== null`) {
		t.Error("offline, the page is not a secure context controlled by the worker")
	}
}

// TestBrowserInsecureNotice opens Kaiwa over plain HTTP at a name other than localhost: the app
// works, says once that installing and offline reading need HTTPS, links to /setup (the server
// offers it), and remembers when the notice is dismissed.
func TestBrowserInsecureNotice(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	a, err := tlsca.Open(storetest.Open(t), []string{testHost}, nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ts := servertest.Start(t, server.Config{
		Registration: true, SecureCookies: "never",
		Setup: setup.Config{CACert: a.CACert(), Fingerprint: a.Fingerprint()},
	}, logger)
	url := "http://" + testHost + ":" + ts.URL[strings.LastIndex(ts.URL, ":")+1:]
	b := &browser{ctx: browsertest.StartChromium(t, chromium,
		chromedp.Flag("host-resolver-rules", "MAP "+testHost+" 127.0.0.1"),
	)}

	const (
		notice  = `[data-notice="insecure"] p`
		dismiss = `[data-notice="insecure"] button`
	)
	b.do(t, "open the app over plain HTTP",
		chromedp.Navigate(url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`form[data-view="login"] input[name="username"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-notice="insecure"] p[data-reason="http"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-notice="insecure"] a[href="/setup"]`)),
	)
	if eval[bool](t, b, `window.isSecureContext`) {
		t.Fatal("plain HTTP at " + testHost + " is a secure context: the test proves nothing")
	}
	if text := eval[string](t, b, `document.querySelector('`+notice+`').textContent`); !strings.Contains(text, "HTTPS") {
		t.Errorf("notice %q", text)
	}
	b.do(t, "dismiss the notice",
		chromedp.Click(chromedp.CSS(dismiss)),
		chromedp.WaitNotPresent(chromedp.CSS(notice)),
	)
	b.do(t, "reload",
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`form[data-view="login"] input[name="username"]`)),
	)
	// The notice's component is mounted with the page; give a late render a moment to show.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if !eval[bool](t, b, `document.querySelector('[data-notice="insecure"]') !== null`) {
			t.Fatal("the notice's component is not on the page")
		}
		if eval[bool](t, b, `document.querySelector('`+notice+`') !== null`) {
			t.Fatal("the dismissed notice came back after a reload")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBrowserUntrustedCertificateNotice opens Kaiwa over HTTPS at a LAN name with a browser that
// does not trust the authority but was told to go on, as a user who clicks through the warning:
// the page counts as a secure context, yet the browser refuses the service worker, so the app
// says that the certificate is not trusted and links to /setup.
func TestBrowserUntrustedCertificateNotice(t *testing.T) {
	t.Parallel()
	chromium := requireBrowserPrereqs(t)
	k := startTLSKaiwa(t)
	b := &browser{ctx: browsertest.StartChromium(t, chromium,
		chromedp.Flag("host-resolver-rules", "MAP "+testHost+" 127.0.0.1"),
	)}
	b.do(t, "go past certificate errors", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, security.SetIgnoreCertificateErrors, security.SetIgnoreCertificateErrorsParams{Ignore: true})
		return err
	}))
	b.do(t, "open the app",
		chromedp.Navigate(k.url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`form[data-view="login"] input[name="username"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-notice="insecure"] p[data-reason="certificate"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-notice="insecure"] a[href="/setup"]`)),
	)
	if !eval[bool](t, b, `window.isSecureContext`) {
		t.Error("past a certificate warning the page is no secure context: the notice is tested on the wrong case")
	}
}
