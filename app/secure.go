package app

import (
	goapp "github.com/maxence-charriere/go-app/v10/pkg/app"
)

// insecureDismissedKey is the local storage key that remembers, per device, that the user
// dismissed the insecure-context notice. It is outside the keys that signing out clears:
// it belongs to the device, not to the user.
const insecureDismissedKey = "kaiwa-insecure-notice-dismissed"

// PathSetup is the server's page on trusting its certificate authority (-tls-self). It is
// not a page of the app: the server renders it.
const PathSetup = "/setup"

// workerPath is where go-app serves the service worker it registers.
const workerPath = "/app-worker.js"

// Why the app cannot be installed or read offline, as data-reason says.
const (
	reasonHTTP        = "http"        // plain HTTP at an address other than localhost
	reasonCertificate = "certificate" // HTTPS with a certificate the browser does not trust
)

// insecureNotice tells the user once, unobtrusively, when this page cannot have a service
// worker, so that Kaiwa can be neither installed nor read offline: the page is not a secure
// context (plain HTTP at an address other than localhost), or it is one only because the user
// went past a certificate warning, which browsers refuse workers too. When the server offers
// /setup it links there. Everything else works without it; the notice can be dismissed for
// good.
type insecureNotice struct {
	goapp.Compo
	reason string // empty: nothing to say
	setup  bool   // the server answers HEAD /setup
}

func (n *insecureNotice) OnMount(ctx goapp.Context) {
	if goapp.IsServer {
		return
	}
	var dismissed bool
	if ctx.LocalStorage().Get(insecureDismissedKey, &dismissed); dismissed {
		return
	}
	win := goapp.Window()
	if !win.Get("isSecureContext").Bool() {
		n.reason = reasonHTTP
		n.askSetup(ctx)
		return
	}
	workers := win.Get("navigator").Get("serviceWorker")
	if !workers.Truthy() {
		return
	}
	// Registering the worker go-app registers is a no-op for the browser, whose answer tells
	// whether a worker is allowed here: a SecurityError when the certificate is not trusted. It
	// waits, as go-app's registration does here, until the page has shown content (ContentEvent).
	var shown goapp.Func
	shown = goapp.FuncOf(func(goapp.Value, []goapp.Value) any {
		shown.Release()
		n.checkWorker(ctx, workers)
		return nil
	})
	win.Call("addEventListener", ContentEvent, shown, map[string]any{"once": true})
}

// checkWorker registers the service worker to learn whether this browser refuses it here.
func (n *insecureNotice) checkWorker(ctx goapp.Context, workers goapp.Value) {
	var ok, failed goapp.Func
	release := func() { ok.Release(); failed.Release() }
	ok = goapp.FuncOf(func(goapp.Value, []goapp.Value) any { release(); return nil })
	failed = goapp.FuncOf(func(_ goapp.Value, args []goapp.Value) any {
		release()
		if len(args) > 0 && args[0].Truthy() && args[0].Get("name").String() == "SecurityError" {
			ctx.Dispatch(func(ctx goapp.Context) {
				n.reason = reasonCertificate
				n.askSetup(ctx)
			})
		}
		return nil
	})
	workers.Call("register", workerPath).Call("then", ok, failed)
}

// askSetup finds out whether the server offers /setup.
func (n *insecureNotice) askSetup(ctx goapp.Context) {
	goapp.Window().Call("fetch", PathSetup, map[string]any{"method": "HEAD", "cache": "no-store"}).Then(func(resp goapp.Value) {
		offered := resp.Truthy() && resp.Get("ok").Bool()
		ctx.Dispatch(func(goapp.Context) { n.setup = offered })
	})
}

func (n *insecureNotice) Render() goapp.UI {
	return goapp.Div().Class("update").DataSet("notice", "insecure").Aria("live", "polite").Body(
		goapp.If(n.reason != "", func() goapp.UI {
			why := "This page is not served over HTTPS"
			if n.reason == reasonCertificate {
				why = "This browser does not trust the server's certificate"
			}
			return goapp.P().DataSet("reason", n.reason).Body(
				goapp.Text(why+", so Kaiwa cannot be installed or read offline here. "),
				goapp.If(n.setup, func() goapp.UI {
					// A new tab: /setup is the server's page, not one of the app's routes.
					return goapp.A().Href(PathSetup).Target("_blank").Rel("noopener").Text("Set up this device")
				}),
				goapp.Button().Type("button").Text("Dismiss").OnClick(func(ctx goapp.Context, e goapp.Event) {
					ctx.LocalStorage().Set(insecureDismissedKey, true)
					n.reason = ""
				}),
			)
		}),
	)
}
