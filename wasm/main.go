//go:build js && wasm

// Command wasm is Kaiwa's browser entry point, compiled to public/web/app.wasm by `make wasm`.
// It must not import the server: everything here ends up in the download.
package main

import (
	goapp "github.com/maxence-charriere/go-app/v10/pkg/app"

	"kaiwa/app"
)

func main() {
	// The Go runtime and every package's initialisation are done: the start-up benchmark
	// measures them up to this mark.
	goapp.Window().Get("performance").Call("mark", "kaiwa-main")
	app.Routes(app.NewTab())
	goapp.RunWhenOnBrowser()
}
