package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"kaiwa/server"
	"kaiwa/server/api"
	"kaiwa/server/auth"
	"kaiwa/server/auth/authtest"
	"kaiwa/server/hub"
	"kaiwa/shared/proto"
)

// newAPIServer serves the API alone over a new database, with the auth clock and throttle
// settings given: for what server.New does not let a test control.
func newAPIServer(t *testing.T, now func() time.Time, throttle auth.ThrottleConfig, opts ...func(*api.Config)) *testServer {
	t.Helper()
	st := openStore(t)
	a, err := auth.New(st, auth.Config{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	h := hub.New(hub.Config{}, st, a, log)
	st.SetObserver(h)
	mux := http.NewServeMux()
	cfg := api.Config{Registration: true, SecureCookies: "auto", Hub: h, Registrations: api.NewAbuseLimiter(now), RoomCreations: api.NewAbuseLimiter(now)}
	for _, opt := range opts {
		opt(&cfg)
	}
	api.New(cfg, st, a, auth.NewThrottle(throttle, now), log).Register(mux)
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		ts.Close()
		h.Close(context.Background())
	})
	return &testServer{Server: ts, st: st, hub: h}
}

func TestRefreshCookie(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode          string
		forwarded     string // X-Forwarded-Proto
		wantSecure    bool
		wantSecureFwd bool
	}{
		{mode: "auto", wantSecure: false, wantSecureFwd: true},
		{mode: "always", wantSecure: true, wantSecureFwd: true},
		{mode: "never", wantSecure: false, wantSecureFwd: false},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			ts := newServer(t, server.Config{Registration: true, SecureCookies: tc.mode})
			resp := do(t, ts.URL, request{method: "POST", path: "/api/auth/register", body: `{"username":"alice","password":"correct horse"}`})
			c := refreshCookie(t, resp)
			checkCookie(t, c, tc.wantSecure)
			if c.MaxAge != int((720 * time.Hour).Seconds()) {
				t.Errorf("Max-Age %d, want the refresh TTL of 720h", c.MaxAge)
			}
			for _, fwd := range []struct {
				proto string
				want  bool
			}{{"", tc.wantSecure}, {"https", tc.wantSecureFwd}} {
				t.Run("X-Forwarded-Proto "+fwd.proto, func(t *testing.T) {
					resp := do(t, ts.URL, request{method: "POST", path: "/api/auth/refresh", cookie: c.Value, header: map[string]string{"X-Forwarded-Proto": fwd.proto}})
					var tb proto.TokenBody
					decodeBody(t, resp, http.StatusOK, &tb)
					next := refreshCookie(t, resp)
					checkCookie(t, next, fwd.want)
					if next.Value == c.Value {
						t.Error("refresh did not rotate the cookie")
					}
					c = next
				})
			}
			t.Run("logout clears it with the same attributes", func(t *testing.T) {
				resp := do(t, ts.URL, request{method: "POST", path: "/api/auth/logout", cookie: c.Value})
				if resp.StatusCode != http.StatusNoContent {
					t.Fatalf("logout status %d, want 204", resp.StatusCode)
				}
				cleared := refreshCookie(t, resp)
				checkCookie(t, cleared, tc.wantSecure)
				if cleared.MaxAge >= 0 || cleared.Value != "" {
					t.Errorf("logout cookie %q, want an empty value with Max-Age=0", resp.Header.Values("Set-Cookie"))
				}
			})
		})
	}
}

func checkCookie(t *testing.T, c *http.Cookie, secure bool) {
	t.Helper()
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != proto.RefreshCookiePath || c.Secure != secure {
		t.Errorf("cookie %s: want HttpOnly, SameSite=Strict, Path=%s, Secure %t", c, proto.RefreshCookiePath, secure)
	}
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	ts := newServer(t, server.Config{Registration: true})
	refresh := func(t *testing.T, cookie string) (response, string) {
		t.Helper()
		resp := do(t, ts.URL, request{method: "POST", path: "/api/auth/refresh", cookie: cookie})
		if resp.StatusCode != http.StatusOK {
			return resp, ""
		}
		var tb proto.TokenBody
		decodeBody(t, resp, http.StatusOK, &tb)
		if tb.AccessToken == "" || tb.User.Name == "" {
			t.Errorf("token body %s", resp.body)
		}
		return resp, refreshCookie(t, resp).Value
	}
	t.Run("the rotated cookie works and the access token too", func(t *testing.T) {
		_, c0 := signup(t, ts.URL, "alice")
		resp, c1 := refresh(t, c0)
		if c1 == "" || c1 == c0 {
			t.Fatalf("refresh: status %d, cookie %q; want a new cookie", resp.StatusCode, c1)
		}
		var tb proto.TokenBody
		decodeBody(t, resp, http.StatusOK, &tb)
		if me := do(t, ts.URL, request{method: "GET", path: "/api/me", token: tb.AccessToken}); me.StatusCode != http.StatusOK {
			t.Errorf("me with the refreshed access token: %d", me.StatusCode)
		}
		if _, c2 := refresh(t, c1); c2 == "" {
			t.Error("the rotated cookie does not refresh")
		}
	})
	t.Run("two refreshes at once with the same cookie both stay signed in", func(t *testing.T) {
		_, c0 := signup(t, ts.URL, "bob")
		var wg sync.WaitGroup
		next := make([]string, 2)
		status := make([]int, 2)
		for i := range next {
			wg.Go(func() {
				req, _ := http.NewRequest("POST", ts.URL+"/api/auth/refresh", nil)
				req.AddCookie(&http.Cookie{Name: proto.RefreshCookie, Value: c0})
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				resp.Body.Close()
				status[i] = resp.StatusCode
				for _, c := range resp.Cookies() {
					if c.Name == proto.RefreshCookie {
						next[i] = c.Value
					}
				}
			})
		}
		wg.Wait()
		for i := range next {
			if status[i] != http.StatusOK || next[i] == "" {
				t.Fatalf("refresh %d: status %d, cookie %q", i, status[i], next[i])
			}
		}
		if next[0] == next[1] {
			t.Error("both tabs got the same token")
		}
		for i, c := range next {
			if resp, c2 := refresh(t, c); c2 == "" {
				t.Errorf("tab %d: its token does not refresh further: %d %s", i, resp.StatusCode, resp.body)
			}
		}
	})
	t.Run("without a cookie", func(t *testing.T) {
		resp, _ := refresh(t, "")
		wantError(t, resp, http.StatusUnauthorized, proto.CodeUnauthorized)
	})
	t.Run("with a made-up cookie", func(t *testing.T) {
		resp, _ := refresh(t, "made.up")
		wantError(t, resp, http.StatusUnauthorized, proto.CodeUnauthorized)
	})
	t.Run("an access token as the cookie", func(t *testing.T) {
		tb, _ := signup(t, ts.URL, "carol")
		resp, _ := refresh(t, tb.AccessToken)
		wantError(t, resp, http.StatusUnauthorized, proto.CodeUnauthorized)
	})
}

func TestRefreshReuse(t *testing.T) {
	t.Parallel()
	clk := authtest.NewClock(time.Now())
	ts := newAPIServer(t, clk.Now, auth.ThrottleConfig{})
	refresh := func(t *testing.T, cookie string) response {
		t.Helper()
		return do(t, ts.URL, request{method: "POST", path: "/api/auth/refresh", cookie: cookie})
	}
	rotate := func(t *testing.T, cookie string) (string, proto.TokenBody) {
		t.Helper()
		resp := refresh(t, cookie)
		var tb proto.TokenBody
		decodeBody(t, resp, http.StatusOK, &tb)
		return refreshCookie(t, resp).Value, tb
	}
	t.Run("replay within the grace yields a sibling", func(t *testing.T) {
		_, c0 := signup(t, ts.URL, "alice")
		c1, _ := rotate(t, c0)
		clk.Advance(auth.RefreshGrace / 2)
		c2, _ := rotate(t, c0)
		if c2 == c1 {
			t.Error("the sibling is the successor itself")
		}
		rotate(t, c1)
		rotate(t, c2)
	})
	t.Run("replay after the grace signs the session out", func(t *testing.T) {
		_, c0 := signup(t, ts.URL, "bob")
		c1, _ := rotate(t, c0)
		c2, tb := rotate(t, c1)
		clk.Advance(auth.RefreshGrace + time.Second)
		resp := refresh(t, c0)
		wantError(t, resp, http.StatusUnauthorized, proto.CodeRefreshReused)
		if c := refreshCookie(t, resp); c.MaxAge >= 0 {
			t.Errorf("reuse answer cookie %s, want it cleared", c)
		}
		wantError(t, refresh(t, c2), http.StatusUnauthorized, proto.CodeUnauthorized)
		me := do(t, ts.URL, request{method: "GET", path: "/api/me", token: tb.AccessToken})
		wantError(t, me, http.StatusUnauthorized, proto.CodeUnauthorized)
	})
}

func TestLogout(t *testing.T) {
	t.Parallel()
	ts := newServer(t, server.Config{Registration: true})
	tb, c0 := signup(t, ts.URL, "alice")
	other, _ := signup(t, ts.URL, "bob")

	resp := do(t, ts.URL, request{method: "POST", path: "/api/auth/logout", cookie: c0})
	if resp.StatusCode != http.StatusNoContent || len(resp.body) != 0 {
		t.Fatalf("logout: %d %q, want 204 and no body", resp.StatusCode, resp.body)
	}
	if c := refreshCookie(t, resp); c.Value != "" || c.MaxAge >= 0 {
		t.Errorf("logout cookie %q, want it cleared (Max-Age=0)", resp.Header.Values("Set-Cookie"))
	}
	tests := []struct {
		name string
		req  request
		code string
	}{
		{"the refresh token", request{method: "POST", path: "/api/auth/refresh", cookie: c0}, proto.CodeUnauthorized},
		{"an access token of the session", request{method: "GET", path: "/api/me", token: tb.AccessToken}, proto.CodeUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, do(t, ts.URL, tc.req), http.StatusUnauthorized, tc.code)
		})
	}
	t.Run("other sessions go on", func(t *testing.T) {
		if me := do(t, ts.URL, request{method: "GET", path: "/api/me", token: other.AccessToken}); me.StatusCode != http.StatusOK {
			t.Errorf("bob's token after alice's logout: %d", me.StatusCode)
		}
	})
	t.Run("without a cookie", func(t *testing.T) {
		if resp := do(t, ts.URL, request{method: "POST", path: "/api/auth/logout"}); resp.StatusCode != http.StatusNoContent {
			t.Errorf("logout without a cookie: %d, want 204", resp.StatusCode)
		}
	})
}

func TestLoginEnumeration(t *testing.T) {
	t.Parallel()
	ts := newServer(t, server.Config{Registration: true})
	signup(t, ts.URL, "alice")
	login := func(name string) response {
		return do(t, ts.URL, request{method: "POST", path: "/api/auth/login", body: `{"username":"` + name + `","password":"wrong horse"}`})
	}
	wrong := login("alice")
	wantError(t, wrong, http.StatusUnauthorized, proto.CodeInvalidCredentials)
	wrong.Header.Del("Date")
	for _, tc := range []struct{ name, user string }{
		{"unknown user", "mallory"},
		{"a name that cannot exist", "al"},
		{"a 60 KB name", strings.Repeat("a", 60_000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			other := login(tc.user)
			if other.StatusCode != wrong.StatusCode {
				t.Errorf("status: %s %d, wrong password %d", tc.name, other.StatusCode, wrong.StatusCode)
			}
			if string(other.body) != string(wrong.body) {
				t.Errorf("bodies differ:\n%s   %q\nwrong password %q", tc.name, other.body, wrong.body)
			}
			other.Header.Del("Date")
			if fmt.Sprint(other.Header) != fmt.Sprint(wrong.Header) {
				t.Errorf("headers differ:\n%s   %v\nwrong password %v", tc.name, other.Header, wrong.Header)
			}
		})
	}
}

func TestLoginThrottle(t *testing.T) {
	t.Parallel()
	login := func(t *testing.T, url, name, password string) response {
		t.Helper()
		return do(t, url, request{method: "POST", path: "/api/auth/login", body: `{"username":"` + name + `","password":"` + password + `"}`})
	}
	wantThrottled := func(t *testing.T, resp response) {
		t.Helper()
		wantError(t, resp, http.StatusTooManyRequests, proto.CodeTooManyAttempts)
		if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 {
			t.Errorf("Retry-After %q, want whole seconds ≥ 1", resp.Header.Get("Retry-After"))
		}
	}
	t.Run("per name and address", func(t *testing.T) {
		t.Parallel()
		// The default limits, on a clock that stands still: the budget refills one attempt every
		// 30 s, and six argon2id hashes on a loaded machine may take longer than that.
		ts := newAPIServer(t, authtest.NewClock(time.Now()).Now, auth.ThrottleConfig{})
		signup(t, ts.URL, "alice")
		for i := range 5 {
			wantError(t, login(t, ts.URL, "alice", "wrong horse "+strconv.Itoa(i)), http.StatusUnauthorized, proto.CodeInvalidCredentials)
		}
		wantThrottled(t, login(t, ts.URL, "alice", "wrong horse"))
		wantThrottled(t, login(t, ts.URL, "Alice", "correct horse")) // no bypass by the right password
		wantError(t, login(t, ts.URL, "bob", "wrong horse"), http.StatusUnauthorized, proto.CodeInvalidCredentials)
	})
	t.Run("per address", func(t *testing.T) {
		t.Parallel()
		ts := newAPIServer(t, nil, auth.ThrottleConfig{PerUser: rate.Every(time.Minute), PerUserBurst: 2, PerIP: rate.Every(time.Minute), PerIPBurst: 3})
		for _, name := range []string{"alice", "alice"} {
			wantError(t, login(t, ts.URL, name, "wrong horse"), http.StatusUnauthorized, proto.CodeInvalidCredentials)
		}
		wantThrottled(t, login(t, ts.URL, "alice", "wrong horse"))
		wantError(t, login(t, ts.URL, "bob", "wrong horse"), http.StatusUnauthorized, proto.CodeInvalidCredentials)
		wantThrottled(t, login(t, ts.URL, "carol", "wrong horse"))
	})
}

func TestRegisterValidation(t *testing.T) {
	t.Parallel()
	ts := newServer(t, server.Config{Registration: true})
	tests := []struct {
		name, user, password string
		status               int
		code                 string
	}{
		{"too short", "ab", "correct horse", http.StatusBadRequest, proto.CodeInvalidUsername},
		{"too long", strings.Repeat("a", 33), "correct horse", http.StatusBadRequest, proto.CodeInvalidUsername},
		{"space", "al ice", "correct horse", http.StatusBadRequest, proto.CodeInvalidUsername},
		{"slash", "al/ice", "correct horse", http.StatusBadRequest, proto.CodeInvalidUsername},
		{"non-ASCII", "ålice", "correct horse", http.StatusBadRequest, proto.CodeInvalidUsername},
		{"empty", "", "correct horse", http.StatusBadRequest, proto.CodeInvalidUsername},
		{"7-byte password", "dave", "1234567", http.StatusBadRequest, proto.CodeInvalidPassword},
		{"1025-byte password", "dave", strings.Repeat("p", 1025), http.StatusBadRequest, proto.CodeInvalidPassword},
		{"8-byte password", "erin", "12345678", http.StatusCreated, ""},
		{"1024-byte password", "frank", strings.Repeat("p", 1024), http.StatusCreated, ""},
		{"32-character name", strings.Repeat("g", 32), "correct horse", http.StatusCreated, ""},
		{"uppercase is lowercased", "Alice", "correct horse", http.StatusCreated, ""},
		{"the same name in lowercase", "alice", "correct horse", http.StatusConflict, proto.CodeUsernameTaken},
		{"the same name in capitals", "ALICE", "correct horse", http.StatusConflict, proto.CodeUsernameTaken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(t, ts.URL, request{method: "POST", path: "/api/auth/register", body: `{"username":"` + tc.user + `","password":"` + tc.password + `"}`})
			if tc.code != "" {
				wantError(t, resp, tc.status, tc.code)
				return
			}
			var tb proto.TokenBody
			decodeBody(t, resp, tc.status, &tb)
			if want := strings.ToLower(tc.user); tb.User.Name != want || tb.User.Admin {
				t.Errorf("user %+v, want %q, not admin", tb.User, want)
			}
		})
	}
}

func TestRegistrationClosed(t *testing.T) {
	t.Parallel()
	ts := newServer(t, server.Config{Registration: false})
	resp := do(t, ts.URL, request{method: "POST", path: "/api/auth/register", body: `{"username":"alice","password":"correct horse"}`})
	wantError(t, resp, http.StatusForbidden, proto.CodeRegistrationClosed)
	if _, err := ts.st.UserByName("alice"); err == nil {
		t.Error("registration is closed, yet alice exists")
	}
}

func TestAuthOrigins(t *testing.T) {
	t.Parallel()
	ts := newServer(t, server.Config{Registration: true, Origins: []string{"https://chat.example.com"}})
	_, cookie := signup(t, ts.URL, "alice")
	self := "http://" + ts.Listener.Addr().String()
	host := ts.Listener.Addr().String()
	tests := []struct {
		name, origin string
		forwarded    string // X-Forwarded-Proto, as a TLS proxy in front would set it
		allowed      bool
	}{
		{"no origin", "", "", true},
		{"same host", self, "", true},
		{"same host over https, served over http", "https://" + host, "", false},
		{"same host over https behind a TLS proxy", "https://" + host, "https", true},
		{"same host over http behind a TLS proxy", "http://" + host, "https", false},
		{"same host over http behind a plain proxy", "http://" + host, "http", true},
		{"listed origin", "https://chat.example.com", "", true},
		{"listed origin, other case", "https://Chat.Example.com", "", true},
		{"evil origin", "http://evil.example", "", false},
		{"listed host, other scheme", "http://chat.example.com", "", false},
		{"listed host as a suffix", "https://chat.example.com.evil.example", "", false},
		{"null", "null", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.origin != "" {
				hdr["Origin"] = tc.origin
			}
			if tc.forwarded != "" {
				hdr["X-Forwarded-Proto"] = tc.forwarded
			}
			// Bodies that fail after the origin check, cheaply: no password is hashed.
			for _, req := range []request{
				{method: "POST", path: "/api/auth/login", body: `not json`, header: hdr},
				{method: "POST", path: "/api/auth/register", body: `not json`, header: hdr},
				{method: "POST", path: "/api/auth/refresh", header: hdr},
				{method: "POST", path: "/api/auth/logout", cookie: "no.such", header: hdr},
				{method: "GET", path: "/ws", header: hdr}, // no subprotocol: 400 once the origin passes
			} {
				resp := do(t, ts.URL, req)
				if tc.allowed && resp.StatusCode == http.StatusForbidden {
					t.Errorf("%s: 403 %s, want the origin allowed", req.path, resp.body)
				}
				if !tc.allowed {
					wantError(t, resp, http.StatusForbidden, proto.CodeForbiddenOrigin)
				}
			}
		})
	}
	t.Run("with -secure-cookies always the server is taken to be reached over https", func(t *testing.T) {
		ts := newServer(t, server.Config{Registration: true, SecureCookies: "always"})
		host := ts.Listener.Addr().String()
		for origin, allowed := range map[string]bool{"https://" + host: true, "http://" + host: false} {
			resp := do(t, ts.URL, request{method: "POST", path: "/api/auth/login", body: `not json`, header: map[string]string{"Origin": origin}})
			if got := resp.StatusCode != http.StatusForbidden; got != allowed {
				t.Errorf("origin %s: %d %s, want allowed %t", origin, resp.StatusCode, resp.body, allowed)
			}
		}
	})
	t.Run("a refused refresh does not rotate the cookie", func(t *testing.T) {
		resp := do(t, ts.URL, request{method: "POST", path: "/api/auth/refresh", cookie: cookie, header: map[string]string{"Origin": "http://evil.example"}})
		wantError(t, resp, http.StatusForbidden, proto.CodeForbiddenOrigin)
		resp = do(t, ts.URL, request{method: "POST", path: "/api/auth/refresh", cookie: cookie, header: map[string]string{"Origin": self}})
		if resp.StatusCode != http.StatusOK {
			t.Errorf("same-origin refresh after a refused one: %d %s", resp.StatusCode, resp.body)
		}
	})
}
