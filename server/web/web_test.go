package web

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/andybalholm/brotli"

	"kaiwa/app"
	"kaiwa/shared/proto"
)

// testServer serves h for the length of the test.
func testServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts
}

// get fetches path with the given request headers and returns the response and its body, as
// sent (never decompressed by the client).
func get(t *testing.T, ts *httptest.Server, path string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if req.Header.Get("Accept-Encoding") == "" {
		// An explicit identity keeps the transport from asking for gzip and decoding it.
		req.Header.Set("Accept-Encoding", "identity")
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func compress(t *testing.T, raw []byte) (br, gz []byte) {
	t.Helper()
	var b, g bytes.Buffer
	bw := brotli.NewWriterLevel(&b, brotli.BestCompression)
	gw, _ := gzip.NewWriterLevel(&g, gzip.BestCompression)
	for _, w := range []io.WriteCloser{bw, gw} {
		if _, err := w.Write(raw); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes(), g.Bytes()
}

func decode(t *testing.T, encoding string, body []byte) []byte {
	t.Helper()
	var r io.Reader = bytes.NewReader(body)
	switch encoding {
	case "br":
		r = brotli.NewReader(r)
	case "gzip":
		gr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = gr
	case "":
	default:
		t.Fatalf("unexpected Content-Encoding %q", encoding)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", encoding, err)
	}
	return out
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// fakeRoot is a web root with a small app.wasm and its compressed forms, as the build makes them.
func fakeRoot(t *testing.T, wasm []byte) fstest.MapFS {
	t.Helper()
	br, gz := compress(t, wasm)
	return fstest.MapFS{
		"app.wasm":              {Data: wasm},
		"app.wasm.br":           {Data: br},
		"app.wasm.gz":           {Data: gz},
		"kaiwa.css":             {Data: []byte(strings.Repeat("body { margin: 0; }\n", 50))},
		"icon-192.png":          {Data: []byte("png")},
		"icon-512.png":          {Data: []byte("png")},
		"icon-maskable-512.png": {Data: []byte("png")},
		"icon.svg":              {Data: []byte("<svg/>")},
		"robots.txt":            {Data: []byte("User-agent: *\n")},
	}
}

func TestWasmEncodings(t *testing.T) {
	wasm := bytes.Repeat([]byte("\x00asm kaiwa "), 5000)
	h, err := newHandler(fakeRoot(t, wasm), discard())
	if err != nil {
		t.Fatal(err)
	}
	ts := testServer(t, h)
	tests := []struct {
		name     string
		accept   string
		encoding string
	}{
		{"brotli and gzip", "gzip, deflate, br, zstd", "br"},
		{"gzip only", "gzip", "gzip"},
		{"x-gzip", "x-gzip", "gzip"},
		{"identity", "identity", ""},
		{"brotli refused", "br;q=0, gzip;q=0.8", "gzip"},
		{"everything refused", "br;q=0, gzip;q=0", ""},
		{"star", "*", "br"},
		{"upper case", "GZIP", "gzip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, ts, "/web/app.wasm", http.Header{"Accept-Encoding": {tt.accept}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := resp.Header.Get("Content-Encoding"); got != tt.encoding {
				t.Errorf("Content-Encoding = %q, want %q", got, tt.encoding)
			}
			if got := resp.Header.Get("Content-Type"); got != "application/wasm" {
				t.Errorf("Content-Type = %q", got)
			}
			if got := resp.Header.Values("Vary"); !strings.Contains(strings.Join(got, ","), "Accept-Encoding") {
				t.Errorf("Vary = %q, want Accept-Encoding", got)
			}
			if got := resp.Header.Get("ETag"); got == "" {
				t.Error("no ETag")
			}
			if got := decode(t, resp.Header.Get("Content-Encoding"), body); !bytes.Equal(got, wasm) {
				t.Errorf("decoded body has %d bytes, want the %d of app.wasm", len(got), len(wasm))
			}
		})
	}
}

func TestPickEncoding(t *testing.T) {
	tests := []struct {
		name         string
		accept       string
		haveBr, have bool
		want         string
	}{
		{"no header", "", true, true, ""},
		{"brotli preferred", "gzip, br", true, true, "br"},
		{"no brotli form", "gzip, br", false, true, "gzip"},
		{"no forms", "gzip, br", false, false, ""},
		{"q with spaces", "br ; q = 0 , gzip", true, true, "gzip"},
		{"star refused", "*;q=0", true, true, ""},
		{"star with br refused", "br;q=0, *", true, true, "gzip"},
		{"unparsable q keeps 1", "br;q=abc", true, false, "br"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pickEncoding(tt.accept, tt.haveBr, tt.have); got != tt.want {
				t.Errorf("pickEncoding(%q) = %q, want %q", tt.accept, got, tt.want)
			}
		})
	}
}

func TestStalePrecompressedIsNotServed(t *testing.T) {
	root := fakeRoot(t, []byte("old app"))
	root["app.wasm"] = &fstest.MapFile{Data: []byte("new app, rebuilt without precompress")}
	h, err := newHandler(root, discard())
	if err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, testServer(t, h), "/web/app.wasm", http.Header{"Accept-Encoding": {"br, gzip"}})
	if enc := resp.Header.Get("Content-Encoding"); enc != "" {
		t.Errorf("Content-Encoding = %q for a stale compressed form, want the raw file", enc)
	}
	if string(body) != "new app, rebuilt without precompress" {
		t.Errorf("body = %q", body)
	}
}

func TestRevalidation(t *testing.T) {
	h, err := newHandler(fakeRoot(t, []byte("wasm")), discard())
	if err != nil {
		t.Fatal(err)
	}
	ts := testServer(t, h)
	for _, accept := range []string{"br", "gzip", "identity"} {
		t.Run(accept, func(t *testing.T) {
			resp, _ := get(t, ts, "/web/app.wasm", http.Header{"Accept-Encoding": {accept}})
			etag := resp.Header.Get("ETag")
			if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
				t.Errorf("Cache-Control = %q", cc)
			}
			again, body := get(t, ts, "/web/app.wasm", http.Header{"Accept-Encoding": {accept}, "If-None-Match": {etag}})
			if again.StatusCode != http.StatusNotModified || len(body) != 0 {
				t.Errorf("revalidation with ETag %s: status %d, %d bytes; want 304", etag, again.StatusCode, len(body))
			}
		})
	}
	// Each form has its own ETag, or a cache could pair one form's body with another's coding.
	br, _ := get(t, ts, "/web/app.wasm", http.Header{"Accept-Encoding": {"br"}})
	gz, _ := get(t, ts, "/web/app.wasm", http.Header{"Accept-Encoding": {"gzip"}})
	if br.Header.Get("ETag") == gz.Header.Get("ETag") {
		t.Errorf("brotli and gzip share ETag %s", br.Header.Get("ETag"))
	}
}

func TestVersionFollowsFiles(t *testing.T) {
	version := func(root fstest.MapFS) string {
		t.Helper()
		assets, err := loadAssets(root, discard())
		if err != nil {
			t.Fatal(err)
		}
		return appVersion(assets)
	}
	a := fakeRoot(t, []byte("app one"))
	b := fakeRoot(t, []byte("app two"))
	c := fakeRoot(t, []byte("app one"))
	c["kaiwa.css"] = &fstest.MapFile{Data: []byte("body{color:red}")}
	if version(a) == version(b) {
		t.Error("a new app.wasm keeps the version")
	}
	if version(a) == version(c) {
		t.Error("a new style sheet keeps the version")
	}
	if version(a) != version(fakeRoot(t, []byte("app one"))) {
		t.Error("the same files give another version")
	}
}

// TestHandler checks the handler built from the real web root: headers, pages, manifest,
// worker. It does not need app.wasm.
func TestHandler(t *testing.T) {
	h, err := New(discard())
	if err != nil {
		t.Fatal(err)
	}
	ts := testServer(t, h)

	t.Run("security headers", func(t *testing.T) {
		for _, path := range []string{"/", "/login", "/web/kaiwa.css", "/app-worker.js", "/manifest.webmanifest", "/app.js", "/no-such-page", "/web/nope"} {
			t.Run(path, func(t *testing.T) {
				resp, _ := get(t, ts, path, nil)
				csp := resp.Header.Get("Content-Security-Policy")
				for _, want := range []string{"'wasm-unsafe-eval'", "frame-ancestors 'none'", "default-src 'self'"} {
					if !strings.Contains(csp, want) {
						t.Errorf("CSP %q lacks %s", csp, want)
					}
				}
				if strings.Contains(csp, "'unsafe-eval'") || strings.Contains(csp, "'unsafe-inline'") {
					t.Errorf("CSP %q allows eval or inline code", csp)
				}
				if strings.Contains(csp, "http:") || strings.Contains(csp, "https:") {
					t.Errorf("CSP %q allows another host", csp)
				}
				if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
					t.Errorf("X-Content-Type-Options = %q", got)
				}
				if got := resp.Header.Get("Referrer-Policy"); got != "no-referrer" {
					t.Errorf("Referrer-Policy = %q", got)
				}
			})
		}
	})

	t.Run("pages", func(t *testing.T) {
		tests := []struct {
			path   string
			status int
		}{
			{"/", http.StatusOK},
			{"/login", http.StatusOK},
			{"/register", http.StatusOK},
			{"/rooms/general", http.StatusOK},
			{"/rooms/a-b-9", http.StatusOK},
			{"/rooms/Not_A_Room", http.StatusNotFound},
			{"/rooms/", http.StatusNotFound},
			{"/no-such-page", http.StatusNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.path, func(t *testing.T) {
				resp, body := get(t, ts, tt.path, nil)
				if resp.StatusCode != tt.status {
					t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
				}
				if tt.status != http.StatusOK {
					return
				}
				page := string(body)
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
					t.Errorf("Content-Type = %q", ct)
				}
				// The prerendered page waits for the session check: a signed-in person who
				// reloads never sees a login form.
				if !strings.Contains(page, `data-view="loading"`) {
					t.Error("prerendered page lacks the loading view")
				}
				if strings.Contains(page, `name="password"`) {
					t.Error("prerendered page holds a password field")
				}
				for _, want := range []string{`/web/kaiwa.css`, `/manifest.webmanifest`, `/app.js`, `/web/icon.svg`} {
					if !strings.Contains(page, want) {
						t.Errorf("page does not reference %s", want)
					}
				}
				// Nothing is loaded from another host.
				for _, m := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(page, -1) {
					if strings.Contains(m[1], "://") || strings.HasPrefix(m[1], "//") {
						t.Errorf("page loads %s from another host", m[1])
					}
				}
			})
		}
	})

	t.Run("manifest", func(t *testing.T) {
		resp, body := get(t, ts, "/manifest.webmanifest", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		var m struct {
			Name     string `json:"name"`
			StartURL string `json:"start_url"`
			Display  string `json:"display"`
			Icons    []struct {
				Src, Sizes, Purpose string
			} `json:"icons"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("manifest: %v\n%s", err, body)
		}
		if m.Name != "Kaiwa" || m.StartURL != "/" || m.Display != "standalone" {
			t.Errorf("manifest = %+v", m)
		}
		seen := map[string]bool{}
		for _, icon := range m.Icons {
			seen[icon.Sizes+" "+icon.Purpose] = true
			if !strings.HasPrefix(icon.Src, "/web/") {
				t.Errorf("icon %s is not served by Kaiwa", icon.Src)
				continue
			}
			if resp, _ := get(t, ts, icon.Src, nil); resp.StatusCode != http.StatusOK {
				t.Errorf("icon %s: status %d", icon.Src, resp.StatusCode)
			}
		}
		for _, want := range []string{"192x192 ", "512x512 ", "512x512 maskable"} {
			if !seen[want] {
				t.Errorf("manifest lacks icon %q; has %v", want, seen)
			}
		}
	})

	t.Run("icons are PNG", func(t *testing.T) {
		for _, path := range []string{"/web/icon-192.png", "/web/icon-512.png", "/web/icon-maskable-512.png"} {
			resp, body := get(t, ts, path, nil)
			if resp.Header.Get("Content-Type") != "image/png" || !bytes.HasPrefix(body, []byte("\x89PNG")) {
				t.Errorf("%s: %s, %d bytes", path, resp.Header.Get("Content-Type"), len(body))
			}
		}
	})

	t.Run("service worker", func(t *testing.T) {
		resp, body := get(t, ts, "/app-worker.js", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		worker := string(body)
		if strings.Contains(worker, "{{") {
			t.Error("worker has unfilled template fields")
		}
		if strings.Contains(worker, "://") {
			t.Error("worker names another host")
		}
		// The room list's snapshot is where the app keeps it, and shown only with the session hint.
		snapshot := []string{strconv.Quote(app.SnapshotCache), strconv.Quote(app.SnapshotKey), strconv.Quote(proto.SessionHintCookie)}
		for _, want := range append([]string{`"/"`, `"/web/app.wasm"`, `"/app.js"`, `"/wasm_exec.js"`, `"/web/kaiwa.css"`, `"/web/icon-192.png"`, `"/manifest.webmanifest"`, "event.waitUntil", `"/api/"`, "kaiwa-"}, snapshot...) {
			if !strings.Contains(worker, want) {
				t.Errorf("worker lacks %s", want)
			}
		}
	})

	t.Run("robots.txt", func(t *testing.T) {
		resp, body := get(t, ts, "/robots.txt", nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "User-agent") {
			t.Errorf("status %d, body %q", resp.StatusCode, body)
		}
	})

	t.Run("compressed forms are not files", func(t *testing.T) {
		for _, path := range []string{"/web/app.wasm.br", "/web/app.wasm.gz", "/web/.gitignore"} {
			if resp, _ := get(t, ts, path, nil); resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s: status %d, want 404", path, resp.StatusCode)
			}
		}
	})

	t.Run("methods", func(t *testing.T) {
		for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
			req, _ := http.NewRequest(method, ts.URL+"/", nil)
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s /: status %d, want 405", method, resp.StatusCode)
			}
		}
	})
}

// TestBuiltWasm checks the app.wasm embedded by `make wasm`: served compressed both ways.
func TestBuiltWasm(t *testing.T) {
	raw, err := os.ReadFile("../../public/web/app.wasm")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("public/web/app.wasm is not built (run make wasm): %v", err)
		}
		t.Skip("SKIPPED: public/web/app.wasm is not built; run make wasm")
	}
	h, err := New(discard())
	if err != nil {
		t.Fatal(err)
	}
	ts := testServer(t, h)
	for _, enc := range []string{"br", "gzip"} {
		t.Run(enc, func(t *testing.T) {
			resp, body := get(t, ts, "/web/app.wasm", http.Header{"Accept-Encoding": {enc}})
			if got := resp.Header.Get("Content-Encoding"); got != enc {
				t.Fatalf("Content-Encoding = %q, want %q (run make wasm to precompress)", got, enc)
			}
			if len(body) >= len(raw)/2 {
				t.Errorf("%s form has %d bytes of %d", enc, len(body), len(raw))
			}
			if !bytes.Equal(decode(t, enc, body), raw) {
				t.Error("decoded body differs from public/web/app.wasm")
			}
		})
	}
}

// TestTextFilesCompressed checks that the style sheet and go-app's scripts, worker and manifest
// are sent compressed to a browser that accepts it, and decode to what an identity request gets.
func TestTextFilesCompressed(t *testing.T) {
	h, err := newHandler(fakeRoot(t, []byte("\x00asm")), discard())
	if err != nil {
		t.Fatal(err)
	}
	ts := testServer(t, h)
	for _, path := range []string{"/wasm_exec.js", "/app.js", "/app-worker.js", "/manifest.webmanifest", "/app.css", "/web/kaiwa.css"} {
		for _, enc := range []string{"br", "gzip"} {
			t.Run(path+" "+enc, func(t *testing.T) {
				plain, raw := get(t, ts, path, nil)
				if plain.StatusCode != http.StatusOK || plain.Header.Get("Content-Encoding") != "" {
					t.Fatalf("identity: status %d, Content-Encoding %q", plain.StatusCode, plain.Header.Get("Content-Encoding"))
				}
				resp, body := get(t, ts, path, http.Header{"Accept-Encoding": {enc}})
				if got := resp.Header.Get("Content-Encoding"); got != enc {
					t.Fatalf("Content-Encoding = %q, want %q", got, enc)
				}
				if got := resp.Header.Values("Vary"); !strings.Contains(strings.Join(got, ","), "Accept-Encoding") {
					t.Errorf("Vary = %q, want Accept-Encoding", got)
				}
				if !bytes.Equal(decode(t, enc, body), raw) {
					t.Error("the decoded body differs from the identity one")
				}
				if resp.Header.Get("Content-Type") != plain.Header.Get("Content-Type") || resp.Header.Get("Content-Type") == "" {
					t.Errorf("Content-Type %q, identity %q", resp.Header.Get("Content-Type"), plain.Header.Get("Content-Type"))
				}
			})
		}
	}
}

// TestThemeColors checks the colours of the installed app: the pages say which theme colour
// goes with dark mode, and the manifest's splash colour is not a light surface.
func TestThemeColors(t *testing.T) {
	h, err := newHandler(fakeRoot(t, []byte("\x00asm")), discard())
	if err != nil {
		t.Fatal(err)
	}
	ts := testServer(t, h)
	_, page := get(t, ts, "/login", nil)
	dark := regexp.MustCompile(`<meta name="theme-color" content="(#[0-9a-f]{6})" media="\(prefers-color-scheme: dark\)">`).FindSubmatch(page)
	if dark == nil {
		t.Fatalf("no theme-color for dark mode in the page:\n%s", page)
	}
	if i, j := bytes.Index(page, dark[0]), bytes.Index(page, []byte(`<meta name="theme-color" content="`+themeColor+`">`)); j < 0 || i > j {
		t.Errorf("the dark theme-color must come before the one for every scheme (at %d and %d)", i, j)
	}
	_, body := get(t, ts, "/manifest.webmanifest", nil)
	var m struct {
		ThemeColor      string `json:"theme_color"`
		BackgroundColor string `json:"background_color"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]string{"theme_color": m.ThemeColor, "background_color": m.BackgroundColor} {
		if luminance(t, c) > 0.5 {
			t.Errorf("manifest %s %s is a light colour: it glares in dark mode", name, c)
		}
	}
}

// luminance is the relative brightness of a #rrggbb colour, from 0 to 1 (plain average).
func luminance(t *testing.T, hex string) float64 {
	t.Helper()
	var r, g, b int
	if _, err := fmt.Sscanf(hex, "#%02x%02x%02x", &r, &g, &b); err != nil {
		t.Fatalf("colour %q: %v", hex, err)
	}
	return float64(r+g+b) / (3 * 255)
}

// TestWasmStreamedFromFetch checks that app.js compiles app.wasm from the browser's own response
// to its fetch, the one the browser can keep compiled code for, and not from a Response made in
// the script.
func TestWasmStreamedFromFetch(t *testing.T) {
	h, err := newHandler(fakeRoot(t, []byte("\x00asm")), discard())
	if err != nil {
		t.Fatal(err)
	}
	_, body := get(t, testServer(t, h), "/app.js", nil)
	call := regexp.MustCompile(`instantiateStreaming\(\s*fetch\("/web/app.wasm"\),\s*go.importObject\s*\)`)
	if !call.Match(body) {
		t.Errorf("app.js does not compile the fetched app.wasm directly:\n%s", body)
	}
}

// TestWorkerRegisteredAfterContent checks that app.js registers the service worker once the app
// has shown content (app.ContentEvent), not as the page starts.
func TestWorkerRegisteredAfterContent(t *testing.T) {
	h, err := newHandler(fakeRoot(t, []byte("\x00asm")), discard())
	if err != nil {
		t.Fatal(err)
	}
	_, body := get(t, testServer(t, h), "/app.js", nil)
	js := string(body)
	if strings.Contains(js, "\ngoappInitServiceWorker();") {
		t.Error("app.js still registers the service worker as the page starts")
	}
	for _, want := range []string{"kaiwaAfterContent(goappInitServiceWorker);", `addEventListener("` + app.ContentEvent + `", once`} {
		if !strings.Contains(js, want) {
			t.Errorf("app.js lacks %s", want)
		}
	}
}

// TestStartWatched checks that app.js watches the start of app.wasm (startWatch): go-app's start
// is followed by kaiwaStarted, and the Go program runs through kaiwaRun, which sees it stop.
func TestStartWatched(t *testing.T) {
	h, err := newHandler(fakeRoot(t, []byte("\x00asm")), discard())
	if err != nil {
		t.Fatal(err)
	}
	_, body := get(t, testServer(t, h), "/app.js", nil)
	js := string(body)
	for _, want := range []string{"\ngoappInitWebAssembly().then(kaiwaStarted);\n", "kaiwaRun(go, wasm.instance);", "function kaiwaStartFailed()"} {
		if !strings.Contains(js, want) {
			t.Errorf("app.js lacks %q", want)
		}
	}
	if strings.Contains(js, "\ngoappInitWebAssembly();\n") || strings.Contains(js, "go.run(wasm.instance);") {
		t.Error("app.js still starts app.wasm unwatched")
	}
}
