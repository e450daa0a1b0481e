// Package web serves Kaiwa's web app: the pages (go-app prerenders them and loads app.wasm),
// the static files of kaiwa/public under /web/, the manifest, the icons and the service worker.
// Everything comes from the binary; nothing is loaded from another host, so Kaiwa works on a
// network with no internet.
package web

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	goapp "github.com/maxence-charriere/go-app/v10/pkg/app"

	"kaiwa/app"
	"kaiwa/public"
)

// workerJS is the template of the service worker that go-app serves at /app-worker.js.
//
//go:embed worker.js
var workerJS string

// ContentSecurityPolicy is sent with every response of the handler. Scripts come only from the
// server; 'wasm-unsafe-eval' lets them compile app.wasm, and nothing allows eval of text.
const ContentSecurityPolicy = "default-src 'self'; " +
	"script-src 'self' 'wasm-unsafe-eval'; " +
	"style-src 'self'; " +
	"img-src 'self'; " +
	"connect-src 'self'; " +
	"manifest-src 'self'; " +
	"worker-src 'self'; " +
	"object-src 'none'; " +
	"base-uri 'none'; " +
	"form-action 'self'; " +
	"frame-ancestors 'none'"

// Kaiwa's colours, as in public/web/kaiwa.css. The manifest holds one theme colour and one
// splash colour for both light and dark mode, so both are the brand blue of the icon: it reads
// as neither a light nor a dark surface, and the installed app's splash screen does not flash
// white in dark mode. The pages' theme-color follows the colour scheme (themeColorDark in dark
// mode, the surface of the dark style sheet).
const (
	themeColor      = "#1f5f8b"
	themeColorDark  = "#1c242c"
	backgroundColor = themeColor
)

// handler routes a request to a static file or to go-app.
type handler struct {
	pages     *goapp.Handler
	assets    map[string]*asset // by path under /web/
	generated map[string]*asset // go-app's own files (/app.js, /wasm_exec.js, ...), by path
}

// New returns the handler of every path that is not the API, /ws, /healthz or /metrics. It
// reads the web root into memory once. When app.wasm has not been built (`make wasm`), it logs
// a warning and serves the rest: the pages then cannot start. A nil logger means
// slog.Default().
func New(logger *slog.Logger) (http.Handler, error) {
	if logger == nil {
		logger = slog.Default()
	}
	root, err := fs.Sub(public.FS, "web")
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	return newHandler(root, logger)
}

// newHandler is New for any web root.
func newHandler(root fs.FS, logger *slog.Logger) (*handler, error) {
	assets, err := loadAssets(root, logger)
	if err != nil {
		return nil, err
	}
	wasm, ok := assets["app.wasm"]
	if !ok {
		logger.Warn("web_app_not_built", "hint", "run make wasm")
		wasm = &asset{}
	}
	version := appVersion(assets)
	logger.Info("web_app_loaded", "version", version, "wasm_bytes", len(wasm.raw),
		"brotli", wasm.br != nil, "gzip", wasm.gz != nil)

	app.Routes(nil)
	pages := &goapp.Handler{
		Name:            "Kaiwa",
		ShortName:       "Kaiwa",
		Title:           "Kaiwa",
		Description:     "Chat rooms on your own server.",
		Lang:            "en",
		ThemeColor:      themeColor,
		BackgroundColor: backgroundColor,
		// No percentage: app.js hands the browser's own response to the compiler (see
		// streamWasm), so nothing counts the bytes.
		LoadingLabel: "Loading Kaiwa…",
		Icon: goapp.Icon{
			Default:  "/web/icon-192.png",
			Large:    "/web/icon-512.png",
			Maskable: "/web/icon-maskable-512.png",
			SVG:      "/web/icon.svg",
		},
		Styles:             []string{"/web/kaiwa.css"},
		CacheableResources: []string{"/web/icon.svg"},
		Resources:          webRoot{},
		Version:            version,
		// The loader shows progress against the decoded size: Content-Length is the
		// compressed one.
		WasmContentLength:     strconv.Itoa(len(wasm.raw)),
		ServiceWorkerTemplate: workerJS,
	}
	generated, err := generatedAssets(pages)
	if err != nil {
		return nil, err
	}
	return &handler{pages: pages, assets: assets, generated: generated}, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/web/"):
		h.serveAsset(w, r, strings.TrimPrefix(p, "/web/"))
	case p == "/robots.txt":
		h.serveAsset(w, r, "robots.txt")
	case p == "/sitemap.xml", p == "/ads.txt":
		// go-app would fetch these from the server's own address; Kaiwa has none.
		http.NotFound(w, r)
	case h.generated[p] != nil:
		h.generated[p].serve(w, r)
	default:
		h.servePage(w, r)
	}
}

// servePage answers with go-app's page for the path: the app routes every path itself and
// shows its own not-found view, which is answered with 404 when the path is none of its pages.
// The page's theme-color is made to follow the colour scheme.
func (h *handler) servePage(w http.ResponseWriter, r *http.Request) {
	rec := newRecorder()
	h.pages.ServeHTTP(rec, r)
	body := rec.body.Bytes()
	status := rec.status
	if status == http.StatusOK && !app.IsPage(r.URL.Path) {
		status = http.StatusNotFound
	}
	if strings.HasPrefix(rec.header.Get("Content-Type"), "text/html") {
		if loc := goappThemeMeta.FindIndex(body); loc != nil {
			body = slices.Concat(body[:loc[0]], []byte(themeMetas), body[loc[1]:])
		}
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// goappThemeMeta finds the theme-color go-app writes in every page (its attributes come in any
// order); themeMetas replaces it with one colour per colour scheme (browsers take the first
// whose media matches).
var goappThemeMeta = regexp.MustCompile(`<meta [^>]*name="theme-color"[^>]*>`)

const themeMetas = `<meta name="theme-color" content="` + themeColorDark + `" media="(prefers-color-scheme: dark)">` +
	`<meta name="theme-color" content="` + themeColor + `">`

// generatedFiles are the files go-app makes from its settings. Kaiwa serves them from memory,
// compressed like its own.
var generatedFiles = []string{"/app.js", "/wasm_exec.js", "/app-worker.js", "/manifest.webmanifest", "/app.css"}

// generatedAssets asks go-app once for each of generatedFiles; they never change while the
// server runs.
func generatedAssets(pages http.Handler) (map[string]*asset, error) {
	out := make(map[string]*asset, len(generatedFiles))
	for _, p := range generatedFiles {
		rec := newRecorder()
		pages.ServeHTTP(rec, &http.Request{Method: http.MethodGet, URL: &url.URL{Path: p}, Header: http.Header{}})
		if rec.status != http.StatusOK {
			return nil, fmt.Errorf("web: go-app answers %s with %d", p, rec.status)
		}
		body := rec.body.Bytes()
		if p == "/app.js" {
			streamed, err := streamWasm(body)
			if err != nil {
				return nil, err
			}
			if body, err = registerAfterContent(streamed); err != nil {
				return nil, err
			}
			if body, err = watchStart(body); err != nil {
				return nil, err
			}
		}
		out[p] = newAsset(p, body)
	}
	return out, nil
}

// goappWasmFetch is how go-app's app.js fetches app.wasm: into a Response of its own making,
// which counts the bytes for a progress label. That Response has no URL, so the browser can
// neither keep the compiled module in its code cache nor take it from there, and every load
// compiles the whole module again; its byte counting also runs on the page's main thread.
const goappWasmFetch = `fetchWithProgress("/web/app.wasm", showProgress)`

// streamWasm makes app.js hand the browser's own response for app.wasm to
// WebAssembly.instantiateStreaming: no script touches the bytes on the way, and the module may
// be taken from the browser's code cache. Chromium writes that cache only once enough of the
// module has been optimised, which Kaiwa's loads have not been seen to reach (BENCHMARKS.md).
func streamWasm(appJS []byte) ([]byte, error) {
	if !bytes.Contains(appJS, []byte(goappWasmFetch)) {
		return nil, errors.New("web: go-app's app.js no longer fetches app.wasm as expected")
	}
	return bytes.Replace(appJS, []byte(goappWasmFetch), []byte(`fetch("/web/app.wasm")`), 1), nil
}

// goappRegister is where go-app's app.js registers the service worker: at once, as the page
// starts.
const goappRegister = "\ngoappInitServiceWorker();\n"

// registerAfter defers a function of app.js until the app has first shown content (its
// app.ContentEvent), or 10 s after the page's load event if it never does.
const registerAfter = `
function kaiwaAfterContent(f) {
  let done = false;
  const once = () => {
    if (!done) {
      done = true;
      f();
    }
  };
  window.addEventListener("` + app.ContentEvent + `", once, { once: true });
  window.addEventListener("load", () => setTimeout(once, 10000), { once: true });
}
`

// registerAfterContent makes app.js register the service worker once the app has shown its
// first content rather than as the page starts: the worker's install downloads every file of
// the app again, app.wasm among them, and a first visit's download, compilation and first render
// would share the network and the two cores with it.
func registerAfterContent(appJS []byte) ([]byte, error) {
	if bytes.Count(appJS, []byte(goappRegister)) != 1 {
		return nil, errors.New("web: go-app's app.js no longer registers its service worker as expected")
	}
	out := bytes.Replace(appJS, []byte(goappRegister), []byte("\nkaiwaAfterContent(goappInitServiceWorker);\n"), 1)
	return append(out, registerAfter...), nil
}

// goappStart and goappRun are where go-app's app.js starts app.wasm, and runs the Go program
// once it is compiled.
const (
	goappStart = "\ngoappInitWebAssembly();\n"
	goappRun   = "go.run(wasm.instance);"
)

// startWatch is the script that watches the start of app.wasm for a room list's snapshot
// (app/snapshot.go), which is inert and covers go-app's loader: only the app removes it, so
// when the app cannot start, the script does. The start fails when app.wasm cannot be fetched
// or compiled (go-app keeps its loader, with the error in its label) or when the Go program
// stops before the app has shown content (it never stops while the app works: a panic); then
// the snapshot goes and is deleted, and the loader shows the error and a button that reloads.
// When app.wasm has not been compiled startLimit after the page started (a download that
// hangs), the snapshot goes and the loader shows that the start is still under way; once the Go
// program runs, the app's own time limits on its requests apply.
const startWatch = `
var kaiwaShown = false;
var kaiwaFailed = false;
window.addEventListener("` + app.ContentEvent + `", () => { kaiwaShown = true; }, { once: true });
var kaiwaStartTimer = setTimeout(kaiwaDropSnapshot, ` + startLimit + `);

function kaiwaDropSnapshot() {
  document.querySelectorAll("body > .snapshot").forEach((s) => s.remove());
}

function kaiwaRun(go, instance) {
  clearTimeout(kaiwaStartTimer);
  const loader = document.getElementById("app-wasm-loader");
  const label = document.getElementById("app-wasm-loader-label");
  const loading = label.innerText;
  const stopped = () => {
    if (kaiwaShown) {
      return;
    }
    if (!loader.isConnected) {
      document.body.append(loader);
    }
    if (label.innerText === loading) {
      label.innerText = "Kaiwa stopped as it started.";
    }
    kaiwaStartFailed();
  };
  go.run(instance).then(stopped, stopped);
}

function kaiwaStarted() {
  if (document.getElementById("app-wasm-loader")) {
    kaiwaStartFailed();
  }
}

function kaiwaStartFailed() {
  if (kaiwaFailed) {
    return;
  }
  kaiwaFailed = true;
  clearTimeout(kaiwaStartTimer);
  kaiwaDropSnapshot();
  if (window.caches) {
    caches.delete("` + app.SnapshotCache + `").catch(() => {});
  }
  document.getElementById("app-wasm-loader-icon").className = "goapp-logo";
  const reload = document.createElement("button");
  reload.type = "button";
  reload.textContent = "Reload";
  reload.addEventListener("click", () => location.reload());
  document.getElementById("app-wasm-loader").append(reload);
}
`

// startLimit is how long, in milliseconds, app.wasm may take to download and compile before a
// room list's snapshot goes (see startWatch).
const startLimit = "20000"

// watchStart makes app.js watch the start of app.wasm (startWatch).
func watchStart(appJS []byte) ([]byte, error) {
	if bytes.Count(appJS, []byte(goappStart)) != 1 || bytes.Count(appJS, []byte(goappRun)) != 1 {
		return nil, errors.New("web: go-app's app.js no longer starts app.wasm as expected")
	}
	out := bytes.Replace(appJS, []byte(goappStart), []byte("\ngoappInitWebAssembly().then(kaiwaStarted);\n"), 1)
	out = bytes.Replace(out, []byte(goappRun), []byte("kaiwaRun(go, wasm.instance);"), 1)
	return append(out, startWatch...), nil
}

// recorder keeps what a handler writes, to be looked at before it is sent.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}, status: http.StatusOK} }

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }

func (h *handler) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	a, ok := h.assets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	a.serve(w, r)
}

// appVersion names the app's version for go-app and the service worker: a digest of every file
// of the web root and of the worker itself, so that any change to what the browser caches
// installs a new worker and offers a reload.
func appVersion(assets map[string]*asset) string {
	names := make([]string, 0, len(assets))
	for name := range assets {
		names = append(names, name)
	}
	slices.Sort(names)
	sum := sha256.New()
	for _, name := range names {
		fmt.Fprintf(sum, "%s %s\n", name, assets[name].hash)
	}
	sum.Write([]byte(workerJS))
	return hex.EncodeToString(sum.Sum(nil))[:20]
}

// webRoot tells go-app where the static files are: at /web/ on this server, which serves them
// itself (so go-app never reads the disk).
type webRoot struct{}

func (webRoot) Resolve(location string) string {
	if location == "" || location == "/" {
		return "/"
	}
	if strings.HasPrefix(location, "web/") || location == "web" {
		return "/" + location
	}
	return location
}
