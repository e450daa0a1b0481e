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

// insecureNotice tells the user once, on a page that is not a secure context (plain HTTP at
// an address other than localhost), that installing the app and reading offline need HTTPS,
// because browsers give service workers only to secure contexts. When the server offers
// /setup it links there. Everything else works without it.
type insecureNotice struct {
	goapp.Compo
	show  bool
	setup bool // the server answers HEAD /setup
}

func (n *insecureNotice) OnMount(ctx goapp.Context) {
	if goapp.IsServer || goapp.Window().Get("isSecureContext").Bool() {
		return
	}
	var dismissed bool
	if ctx.LocalStorage().Get(insecureDismissedKey, &dismissed); dismissed {
		return
	}
	n.show = true
	goapp.Window().Call("fetch", PathSetup, map[string]any{"method": "HEAD", "cache": "no-store"}).Then(func(resp goapp.Value) {
		ok := resp.Truthy() && resp.Get("ok").Bool()
		ctx.Dispatch(func(goapp.Context) { n.setup = ok })
	})
}

func (n *insecureNotice) Render() goapp.UI {
	return goapp.Div().Class("update").DataSet("notice", "insecure").Aria("live", "polite").Body(
		goapp.If(n.show, func() goapp.UI {
			return goapp.P().Body(
				goapp.Text("This page is not served over HTTPS, so Kaiwa cannot be installed or read offline here. "),
				goapp.If(n.setup, func() goapp.UI {
					// A new tab: /setup is the server's page, not one of the app's routes.
					return goapp.A().Href(PathSetup).Target("_blank").Rel("noopener").Text("Set up HTTPS on this device")
				}),
				goapp.Button().Type("button").Text("Dismiss").OnClick(func(ctx goapp.Context, e goapp.Event) {
					ctx.LocalStorage().Set(insecureDismissedKey, true)
					n.show = false
				}),
			)
		}),
	)
}
