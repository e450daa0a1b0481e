// Package public holds Kaiwa's static web root: the files under web/, served at /web/ by
// kaiwa/server/web. The icons and the style sheet are committed; app.wasm and its precompressed
// twins (app.wasm.br, app.wasm.gz) are built by `make wasm` and embedded when present, so the
// server binary is the only thing to deploy.
package public

import "embed"

// FS is the web root. Its files live under "web/", such as "web/kaiwa.css".
//
//go:embed web
var FS embed.FS
