package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"kaiwa/server"
	"kaiwa/server/store/storetest"
	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// newLoggedServer is a server whose every log line, at every level, lands in the returned
// buffer, behind the http.Server that kaiwa serve uses.
func newLoggedServer(t *testing.T, cfg server.Config) (*testServer, *syncBuffer) {
	t.Helper()
	st := storetest.Open(t)
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Registration, cfg.SecureCookies = true, "never"
	srv, err := server.New(cfg, st, log)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.Config = server.HTTPServer("", srv.Handler(), log)
	ts.Start()
	t.Cleanup(func() { // before storetest's check and close, registered first
		srv.Close()
		ts.Close()
	})
	return &testServer{Server: ts, st: st, srv: srv}, logs
}

// TestTokensNeverLogged drives handshakes that succeed and fail in every way, API calls with
// good and bad tokens, refreshes and a reuse, and looks for any token in the server's log.
func TestTokensNeverLogged(t *testing.T) {
	t.Parallel()
	ts, logs := newLoggedServer(t, server.Config{IPConnLimit: 3})
	jar, _ := cookiejar.New(nil)
	api := client.NewAPI(ts.URL, &http.Client{Jar: jar})
	ctx := context.Background()
	tb, err := api.Register(ctx, "alice", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{tb.AccessToken}
	wsURL := "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws"
	dial := func(token string, header http.Header, protocols ...string) (*websocket.Conn, *http.Response, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if protocols == nil {
			protocols = []string{proto.Subprotocol, proto.BearerProtocol + token}
		}
		return websocket.Dial(ctx, wsURL, &websocket.DialOptions{Subprotocols: protocols, HTTPHeader: header})
	}
	tampered := tb.AccessToken[:len(tb.AccessToken)-4] + "AAAA"
	secrets = append(secrets, tampered)

	var open []*websocket.Conn
	for range 3 {
		ws, _, err := dial(tb.AccessToken, nil)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, ws)
	}
	for _, tc := range []struct {
		name      string
		token     string
		header    http.Header
		protocols []string
		status    int
	}{
		{"over the per-address cap", tb.AccessToken, nil, nil, http.StatusTooManyRequests},
		{"foreign origin", tb.AccessToken, http.Header{"Origin": {"https://evil.example"}}, nil, http.StatusForbidden},
		{"no kaiwa.v1", tb.AccessToken, nil, []string{proto.BearerProtocol + tb.AccessToken}, http.StatusBadRequest},
	} {
		_, resp, err := dial(tc.token, tc.header, tc.protocols...)
		if err == nil || resp == nil || resp.StatusCode != tc.status {
			t.Errorf("%s: %v, %v; want %d", tc.name, err, resp, tc.status)
		}
	}
	for _, ws := range open {
		ws.CloseNow()
	}
	// Room under the cap again once the sockets are gone; a tampered token closes 4002.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ws, _, err := dial(tampered, nil)
		if err == nil {
			_, _, err = ws.Read(ctx)
			if code := websocket.CloseStatus(err); code != proto.CloseUnauthorized {
				t.Errorf("tampered token: close %d, want 4002", code)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the per-address cap did not free up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, token := range []string{tb.AccessToken, tampered} {
		req, _ := http.NewRequest("GET", ts.URL+"/api/me", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	// Refresh tokens: rotate, then replay a made-up one and log out.
	if _, err := api.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	refreshURL, _ := url.Parse(ts.URL + "/api/auth/refresh")
	cookies := jar.Cookies(refreshURL)
	if len(cookies) == 0 {
		t.Fatal("no refresh cookie in the jar")
	}
	for _, c := range cookies {
		secrets = append(secrets, c.Value)
	}
	if err := api.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	srv := ts.srv
	srv.Close()

	out := logs.String()
	if !strings.Contains(out, "user_registered") {
		t.Fatalf("the log does not hold what the test expects; is it captured? %q", out)
	}
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		// Any signature or secret part of at least 16 characters is enough to give it away.
		for _, part := range strings.FieldsFunc(secret, func(r rune) bool { return r == '.' }) {
			if len(part) >= 16 && strings.Contains(out, part) {
				t.Errorf("a token part %q is in the log:\n%s", part, out)
			}
		}
	}
}

// TestSecurityHeaders: every response says nosniff and no-referrer and may not be framed; API
// responses carry a CSP that allows nothing.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, server.Config{})
	tests := []struct {
		path, method string
		csp          string // the exact CSP, or "web" for the web app's
	}{
		{"/api/me", "GET", "default-src 'none'; frame-ancestors 'none'"},
		{"/api/auth/login", "POST", "default-src 'none'; frame-ancestors 'none'"},
		{"/api/nowhere", "GET", "default-src 'none'; frame-ancestors 'none'"},
		{"/ws", "GET", "default-src 'none'; frame-ancestors 'none'"},
		{"/healthz", "GET", "default-src 'none'; frame-ancestors 'none'"},
		{"/metrics", "GET", "default-src 'none'; frame-ancestors 'none'"},
		{"/", "GET", "web"},
		{"/login", "GET", "web"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, ts.URL+tc.path, strings.NewReader("{}"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			for name, want := range map[string]string{
				"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
			} {
				if got := resp.Header.Get(name); got != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
			csp := resp.Header.Get("Content-Security-Policy")
			if tc.csp == "web" {
				if !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "'unsafe-eval'") {
					t.Errorf("web CSP %q", csp)
				}
			} else if csp != tc.csp {
				t.Errorf("CSP %q, want %q", csp, tc.csp)
			}
		})
	}
}

// TestCrossSiteWebSocket: a page on another origin cannot open a socket with the user's token,
// whatever it puts in Origin; an origin listed in -origins can.
func TestCrossSiteWebSocket(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, server.Config{Origins: []string{"https://chat.example.com"}})
	tb := ts.register(t, "alice")
	host := strings.TrimPrefix(ts.URL, "http://")
	for _, tc := range []struct {
		origin string
		status int
	}{
		{"https://evil.example", http.StatusForbidden},
		{"null", http.StatusForbidden},
		{"http://" + host + ".evil.example", http.StatusForbidden},
		{"http://evil.example/" + host, http.StatusForbidden},
		{"https://chat.example.com.evil.example", http.StatusForbidden},
		{"https://chat.example.com", http.StatusSwitchingProtocols},
		{"http://" + host, http.StatusSwitchingProtocols},
	} {
		t.Run(tc.origin, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ws, resp, err := websocket.Dial(ctx, "ws://"+host+"/ws", &websocket.DialOptions{
				Subprotocols: []string{proto.Subprotocol, proto.BearerProtocol + tb.AccessToken},
				HTTPHeader:   http.Header{"Origin": {tc.origin}},
			})
			if ws != nil {
				ws.CloseNow()
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("%v, %v; want %d", err, resp, tc.status)
			}
		})
	}
}

// TestSlowHeaderClient: a client that never finishes its request headers is cut off by the
// real server configuration, instead of holding the connection.
func TestSlowHeaderClient(t *testing.T) {
	t.Parallel()
	hs := server.HTTPServer("127.0.0.1:0", http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if hs.ReadHeaderTimeout <= 0 || hs.ReadHeaderTimeout > 10*time.Second || hs.IdleTimeout <= 0 || hs.MaxHeaderBytes <= 0 {
		t.Fatalf("timeouts: header %v, idle %v, max header %d", hs.ReadHeaderTimeout, hs.IdleTimeout, hs.MaxHeaderBytes)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln)
	defer hs.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Headers begun, never ended; a byte now and then would not help either.
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: kaiwa\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(hs.ReadHeaderTimeout + 10*time.Second))
	go func() {
		for range 4 {
			time.Sleep(hs.ReadHeaderTimeout / 4)
			conn.Write([]byte("a"))
		}
	}()
	_, err = io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection was still open %v after the headers began", hs.ReadHeaderTimeout+10*time.Second)
	}
}
