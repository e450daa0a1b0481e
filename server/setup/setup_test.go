package setup_test

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"kaiwa/server/setup"
)

func get(t *testing.T, h http.Handler, method, path string) (*http.Response, string) {
	t.Helper()
	mux := http.NewServeMux()
	h.(*setup.Handler).Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestWithoutAuthority(t *testing.T) {
	h := setup.New(setup.Config{})
	for _, path := range []string{"/setup", "/ca.crt"} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			if resp, _ := get(t, h, method, path); resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s: %d, want 404 without -tls-self", method, path, resp.StatusCode)
			}
		}
	}
}

func TestSetupPage(t *testing.T) {
	der := []byte{0x30, 0x82, 0x01, 0x02, 0xaa, 0xbb} // what is served is the bytes given
	cfg := setup.Config{
		CACert:      der,
		Fingerprint: "AB:CD:EF",
		Addresses:   []string{"https://192.168.1.20:8443/", "https://laptop.local:8443/"},
	}
	h := setup.New(cfg)

	resp, body := get(t, h, http.MethodGet, "/ca.crt")
	if resp.StatusCode != http.StatusOK || body != string(der) {
		t.Errorf("/ca.crt: %d, %x", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-x509-ca-cert" {
		t.Errorf("/ca.crt Content-Type %q", ct)
	}

	resp, body = get(t, h, http.MethodGet, "/setup")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/setup: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`data-fingerprint="AB:CD:EF"`,
		`href="/ca.crt"`,
		`href="https://192.168.1.20:8443/"`,
		`href="https://laptop.local:8443/"`,
		"https://192.168.1.20:8443/setup",
		"Android", "iPhone", "Certificate Trust Settings", "Windows", "macOS", "Linux", "Firefox",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/setup lacks %q", want)
		}
	}
	if n := strings.Count(body, "<svg"); n != 2 {
		t.Errorf("/setup has %d QR codes, want one per address", n)
	}
	if strings.Contains(body, "<script") || strings.Contains(body, " style=") {
		t.Error("/setup has a script or an inline style attribute")
	}
	// The one inline style sheet is allowed by its hash, and nothing else is.
	csp := resp.Header.Get("Content-Security-Policy")
	m := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("/setup has no style sheet")
	}
	sum := sha256.Sum256([]byte(m[1]))
	if want := "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, want) {
		t.Errorf("CSP %q does not allow the page's style sheet (%s)", csp, want)
	}
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	if resp, _ := get(t, h, http.MethodHead, "/setup"); resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD /setup: %d, the app asks this way whether the server offers the page", resp.StatusCode)
	}
}

func TestQRCode(t *testing.T) {
	svg, err := setup.QRCode("https://192.168.1.20:8443/setup")
	if err != nil {
		t.Fatal(err)
	}
	// 31 bytes need version 3 (29 modules) at level M; the quiet zone adds four a side.
	if !strings.Contains(svg, `viewBox="0 0 37 37"`) {
		t.Errorf("QR code is not 29 modules plus the quiet zone: %.120s", svg)
	}
	// The top-left finder pattern: a 7×7 ring starting at the quiet zone's edge.
	for _, module := range []string{"M4 4h1", "M10 4h1", "M4 10h1", "M10 10h1", "M6 6h1"} {
		if !strings.Contains(svg, module) {
			t.Errorf("finder pattern module %q missing", module)
		}
	}
	if strings.Contains(svg, "M5 5h1") {
		t.Error("the finder pattern's white ring is black")
	}
	if _, err := setup.QRCode(strings.Repeat("x", 5000)); err == nil {
		t.Error("a text too long for any QR code was encoded")
	}
}
