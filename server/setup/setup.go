// Package setup serves what a device needs to trust a Kaiwa that runs its own certificate
// authority (-tls-self): the authority's certificate at /ca.crt and, at /setup, a page that says
// how to trust it on common systems, with its fingerprint and the server's address as text and
// as a QR code. Both are public and need no sign-in; the page is plain HTML that works without
// the web app and without scripts, so a device that does not trust the server yet can read it.
package setup

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"rsc.io/qr"
)

// Config is what the handler serves. The zero Config serves nothing: both paths answer 404.
type Config struct {
	// CACert is the authority's certificate, DER encoded; nil when Kaiwa runs no authority.
	CACert []byte
	// Fingerprint is the SHA-256 fingerprint of CACert as devices show it (AB:CD:...).
	Fingerprint string
	// Addresses are the server's https URLs ending in "/", the one a phone should open first.
	// Each is shown as a link to the app and as a QR code of its /setup page, so that a phone
	// that scans it lands on these instructions before it opens the app.
	Addresses []string
}

// CertType is the media type of /ca.crt, which makes phones offer to install the certificate.
// The body is DER, the form that Android, iOS, Windows, macOS and Firefox all import from a
// .crt file; only Debian's system store wants PEM, and the page says how to convert it.
const CertType = "application/x-x509-ca-cert"

//go:embed setup.css
var css string

//go:embed setup.html
var pageHTML string

var page = template.Must(template.New("setup").Parse(pageHTML))

// policy is the page's Content-Security-Policy: its one inline style sheet by hash, and nothing
// else.
var policy = func() string {
	sum := sha256.Sum256([]byte(css))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
		"img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

// Handler serves /setup and /ca.crt.
type Handler struct {
	cfg  Config
	page []byte // rendered once: nothing on it depends on the request
}

// New returns the handler for cfg.
func New(cfg Config) *Handler {
	h := &Handler{cfg: cfg}
	if cfg.CACert == nil {
		return h
	}
	type address struct {
		URL, Setup string
		QR         template.HTML
	}
	data := struct {
		CSS         template.CSS
		Fingerprint string
		Addresses   []address
	}{CSS: template.CSS(css), Fingerprint: cfg.Fingerprint}
	for _, u := range cfg.Addresses {
		setupURL := strings.TrimSuffix(u, "/") + "/setup"
		svg, _ := QRCode(setupURL) // only a text of kilobytes has none; the address is shown anyway
		data.Addresses = append(data.Addresses, address{URL: u, Setup: setupURL, QR: template.HTML(svg)})
	}
	var b bytes.Buffer
	if err := page.Execute(&b, data); err != nil {
		panic(fmt.Sprintf("setup: the page's template failed: %v", err)) // a bug, caught by the tests
	}
	h.page = b.Bytes()
	return h
}

// Register adds the handler's routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle("GET /setup", h)
	mux.Handle("GET /ca.crt", h)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.cfg.CACert == nil {
		http.NotFound(w, r)
		return
	}
	hdr := w.Header()
	switch r.URL.Path {
	case "/ca.crt":
		hdr.Set("Content-Type", CertType)
		hdr.Set("Content-Disposition", `attachment; filename="kaiwa-ca.crt"`)
		hdr.Set("Cache-Control", "no-cache")
		w.Write(h.cfg.CACert)
	case "/setup":
		hdr.Set("Content-Type", "text/html; charset=utf-8")
		hdr.Set("Content-Security-Policy", policy)
		hdr.Set("Cache-Control", "no-store")
		w.Write(h.page)
	default:
		http.NotFound(w, r)
	}
}

// QRCode returns text as a QR code in SVG, black modules on white with the quiet zone of four
// modules that readers need around it.
func QRCode(text string) (string, error) {
	code, err := qr.Encode(text, qr.M)
	if err != nil {
		return "", err
	}
	const quiet = 4
	side := code.Size + 2*quiet
	var path strings.Builder
	for y := range code.Size {
		for x := range code.Size {
			if code.Black(x, y) {
				fmt.Fprintf(&path, "M%d %dh1v1h-1z", x+quiet, y+quiet)
			}
		}
	}
	return fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="240" height="240" shape-rendering="crispEdges" role="img" aria-label="QR code of %s">`+
		`<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="%s"/></svg>`,
		side, side, template.HTMLEscapeString(text), side, side, path.String()), nil
}
