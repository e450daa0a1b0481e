package app

import (
	"context"

	goapp "github.com/maxence-charriere/go-app/v10/pkg/app"

	"kaiwa/shared/proto"
)

// authForm is the sign-in form or, with Register set, the sign-up form. On success it starts
// the tab's session; the page decides where to go next.
type authForm struct {
	goapp.Compo

	Tab      *Tab
	Register bool

	username string
	password string
	err      string // readable error from the last attempt
	busy     bool   // a request is in flight
}

func (f *authForm) Render() goapp.UI {
	title, submit, view := "Sign in", "Sign in", "login"
	passwordAutocomplete := "current-password"
	if f.Register {
		title, submit, view = "Create an account", "Create account", "register"
		passwordAutocomplete = "new-password"
	}
	id := func(name string) string { return view + "-" + name }
	return goapp.Form().
		Class("card auth").
		DataSet("view", view).
		Aria("labelledby", id("title")).
		Aria("busy", f.busy).
		OnSubmit(f.submit).
		Body(
			goapp.H1().ID(id("title")).Text(title),
			goapp.Div().Class("field").Body(
				goapp.Label().For(id("username")).Text("Username"),
				goapp.Input().
					ID(id("username")).
					Name("username").
					Type("text").
					Attr("autocomplete", "username").
					Attr("autocapitalize", "none").
					Spellcheck(false).
					Required(true).
					AutoFocus(true).
					Value(f.username).
					OnInput(f.ValueTo(&f.username)),
			),
			goapp.Div().Class("field").Body(
				goapp.Label().For(id("password")).Text("Password"),
				goapp.Input().
					ID(id("password")).
					Name("password").
					Type("password").
					Attr("autocomplete", passwordAutocomplete).
					Required(true).
					Value(f.password).
					OnInput(f.ValueTo(&f.password)),
			),
			goapp.If(f.err != "", func() goapp.UI {
				return goapp.P().Class("error").Role("alert").Text(f.err)
			}),
			goapp.Button().Type("submit").Disabled(f.busy).Text(submit),
			goapp.If(f.Register, func() goapp.UI {
				return goapp.P().Class("switch").Body(
					goapp.Text("Already have an account? "),
					goapp.A().Href(PathLogin).Text("Sign in"),
				)
			}).Else(func() goapp.UI {
				return goapp.P().Class("switch").Body(
					goapp.Text("No account yet? "),
					goapp.A().Href(PathRegister).Text("Create one"),
				)
			}),
		)
}

func (f *authForm) submit(ctx goapp.Context, e goapp.Event) {
	e.PreventDefault()
	if f.busy {
		return
	}
	f.busy, f.err = true, ""
	username, password, register, tab := f.username, f.password, f.Register, f.Tab
	api := newAPI()
	ctx.Async(func() {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		var tb proto.TokenBody
		var err error
		if register {
			tb, err = api.Register(rctx, username, password)
		} else {
			tb, err = api.Login(rctx, username, password)
		}
		if err != nil {
			ctx.Dispatch(func(ctx goapp.Context) {
				f.busy, f.err = false, errorText(err)
			})
			return
		}
		ctx.Dispatch(func(ctx goapp.Context) {
			f.busy, f.password = false, ""
			tab.signIn(ctx, tb)
		})
	})
}
