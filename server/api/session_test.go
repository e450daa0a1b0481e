package api_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"

	"kaiwa/server"
	"kaiwa/server/api"
	"kaiwa/server/auth"
	"kaiwa/server/auth/authtest"
	"kaiwa/server/metrics"
	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

// openSocket opens /ws with the access token and returns a channel that receives the socket's
// close code once the server closes it. The first frame is read first when hello is set, so
// the socket is known to be open and tracked by the server.
func openSocket(t *testing.T, baseURL, token string, hello bool) <-chan websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(baseURL, "http")+"/ws", &websocket.DialOptions{
		Subprotocols: []string{proto.Subprotocol, proto.BearerProtocol + token},
	})
	if err != nil {
		t.Fatalf("dial /ws: %v", err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	if hello {
		_, data, err := ws.Read(ctx)
		if err != nil || !strings.Contains(string(data), `"type":"hello"`) {
			t.Fatalf("first frame %q, %v; want hello", data, err)
		}
	}
	closed := make(chan websocket.StatusCode, 1)
	go func() {
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				closed <- websocket.CloseStatus(err)
				return
			}
		}
	}()
	return closed
}

// wantClosed fails unless the socket is closed with code within 30 s.
func wantClosed(t *testing.T, closed <-chan websocket.StatusCode, code websocket.StatusCode) {
	t.Helper()
	select {
	case got := <-closed:
		if got != code {
			t.Errorf("socket closed with %d, want %d", got, code)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("socket not closed within 30 s, want %d", code)
	}
}

// TestRefreshLostAnswer covers a refresh whose answer never reached the browser's cookie jar:
// the token rotated away most recently still works while its successor has never been used.
func TestRefreshLostAnswer(t *testing.T) {
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
	wantReuse := func(t *testing.T, cookie string) {
		t.Helper()
		resp := refresh(t, cookie)
		wantError(t, resp, http.StatusUnauthorized, proto.CodeRefreshReused)
		if c := refreshCookie(t, resp); c.MaxAge >= 0 {
			t.Errorf("reuse answer cookie %s, want it cleared", c)
		}
	}

	t.Run("the predecessor works an hour later while the successor is unused", func(t *testing.T) {
		_, c0 := signup(t, ts.URL, "alice")
		lost, _ := rotate(t, c0) // the answer never arrives
		clk.Advance(time.Hour)
		c1, _ := rotate(t, c0)
		if c1 == lost {
			t.Fatal("the replay got the lost token again")
		}
		clk.Advance(time.Hour) // lost again: still the most recent rotation, its successor unused
		c2, tb := rotate(t, c0)
		c3, _ := rotate(t, c2)
		closed := openSocket(t, ts.URL, tb.AccessToken, true)
		clk.Advance(auth.RefreshGrace + time.Second)
		// c1 was voided by the second replay, never used: presenting it is theft.
		wantReuse(t, c1)
		wantClosed(t, closed, proto.CloseRevoked)
		wantError(t, refresh(t, c3), http.StatusUnauthorized, proto.CodeUnauthorized)
	})
	t.Run("the voided successor counts as reuse at once", func(t *testing.T) {
		_, c0 := signup(t, ts.URL, "bob")
		lost, _ := rotate(t, c0)
		clk.Advance(time.Minute)
		c1, tb := rotate(t, c0)
		closed := openSocket(t, ts.URL, tb.AccessToken, true)
		wantReuse(t, lost)
		wantClosed(t, closed, proto.CloseRevoked)
		wantError(t, refresh(t, c1), http.StatusUnauthorized, proto.CodeUnauthorized)
	})
	t.Run("once the successor was used the predecessor is reuse", func(t *testing.T) {
		_, c0 := signup(t, ts.URL, "carol")
		c1, _ := rotate(t, c0)
		c2, tb := rotate(t, c1) // c1 used
		closed := openSocket(t, ts.URL, tb.AccessToken, true)
		clk.Advance(auth.RefreshGrace + time.Second)
		wantReuse(t, c0)
		wantClosed(t, closed, proto.CloseRevoked)
		wantError(t, refresh(t, c2), http.StatusUnauthorized, proto.CodeUnauthorized)
	})
	t.Run("an older token is reuse even while the newest is unused", func(t *testing.T) {
		_, c0 := signup(t, ts.URL, "dave")
		c1, _ := rotate(t, c0)
		rotate(t, c1) // c1 is now the most recent rotation, c0 an older one
		clk.Advance(time.Hour)
		wantReuse(t, c0)
	})
	t.Run("within the grace a replay yields a sibling and the successor stays valid", func(t *testing.T) {
		_, c0 := signup(t, ts.URL, "erin")
		c1, _ := rotate(t, c0)
		clk.Advance(auth.RefreshGrace / 2)
		c2, _ := rotate(t, c0)
		if c2 == c1 {
			t.Fatal("the sibling is the successor itself")
		}
		c3, _ := rotate(t, c1)
		rotate(t, c2)
		rotate(t, c3)
	})
	t.Run("two replays at once after a lost answer both stay signed in", func(t *testing.T) {
		_, c0 := signup(t, ts.URL, "frank")
		rotate(t, c0) // lost
		clk.Advance(time.Hour)
		c1, _ := rotate(t, c0)
		c2, _ := rotate(t, c0) // the same instant: the replay's own grace makes it a sibling
		rotate(t, c1)
		rotate(t, c2)
	})
}

func TestAdminDisableUser(t *testing.T) {
	t.Parallel()
	ts := newServer(t, server.Config{Registration: true})
	root, _ := signup(t, ts.URL, "root")
	if _, err := ts.st.UpdateUser(root.User.ID, func(u *store.User) { u.Admin = true }); err != nil {
		t.Fatal(err)
	}
	bob, bobCookie := signup(t, ts.URL, "bob")
	bob2, _ := signup(t, ts.URL, "carol") // another user, untouched
	login := func(name string) response {
		return do(t, ts.URL, request{method: "POST", path: "/api/auth/login", body: `{"username":"` + name + `","password":"correct horse"}`})
	}
	// bob signs in on a second device too: every session of his goes.
	second := login("bob")
	var secondTB proto.TokenBody
	decodeBody(t, second, http.StatusOK, &secondTB)
	admin := func(token, user, action string) response {
		return do(t, ts.URL, request{method: "POST", path: "/api/admin/users/" + user + "/" + action, token: token})
	}

	t.Run("not an admin", func(t *testing.T) {
		wantError(t, admin(bob2.AccessToken, "bob", "disable"), http.StatusForbidden, proto.CodeForbidden)
		wantError(t, admin(bob2.AccessToken, "bob", "enable"), http.StatusForbidden, proto.CodeForbidden)
	})
	t.Run("unknown user", func(t *testing.T) {
		wantError(t, admin(root.AccessToken, "nobody", "disable"), http.StatusNotFound, proto.CodeNotFound)
		wantError(t, admin(root.AccessToken, "NO%20BODY", "enable"), http.StatusNotFound, proto.CodeNotFound)
	})
	t.Run("not oneself", func(t *testing.T) {
		wantError(t, admin(root.AccessToken, "root", "disable"), http.StatusForbidden, proto.CodeForbidden)
	})
	t.Run("disable", func(t *testing.T) {
		sockets := []<-chan websocket.StatusCode{
			openSocket(t, ts.URL, bob.AccessToken, true),
			openSocket(t, ts.URL, secondTB.AccessToken, true),
		}
		other := openSocket(t, ts.URL, bob2.AccessToken, true)
		if resp := admin(root.AccessToken, "Bob", "disable"); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("disable: %d %s, want 204", resp.StatusCode, resp.body)
		}
		for _, s := range sockets {
			wantClosed(t, s, proto.CloseRevoked)
		}
		// A socket opened with bob's access token, still within its exp, is refused too.
		wantClosed(t, openSocket(t, ts.URL, bob.AccessToken, false), proto.CloseRevoked)
		wantError(t, do(t, ts.URL, request{method: "GET", path: "/api/me", token: bob.AccessToken}), http.StatusUnauthorized, proto.CodeUnauthorized)
		wantError(t, login("bob"), http.StatusUnauthorized, proto.CodeInvalidCredentials)
		wantError(t, do(t, ts.URL, request{method: "POST", path: "/api/auth/refresh", cookie: bobCookie}), http.StatusUnauthorized, proto.CodeUnauthorized)
		select {
		case code := <-other:
			t.Errorf("carol's socket closed with %d when bob was disabled", code)
		default:
		}
		if me := do(t, ts.URL, request{method: "GET", path: "/api/me", token: bob2.AccessToken}); me.StatusCode != http.StatusOK {
			t.Errorf("carol's token after bob was disabled: %d", me.StatusCode)
		}
	})
	t.Run("the refusal survives a restart of the record", func(t *testing.T) {
		u, err := ts.st.UserByName("bob")
		if err != nil || !u.Disabled {
			t.Fatalf("stored bob = %+v, %v; want disabled", u, err)
		}
	})
	t.Run("enable", func(t *testing.T) {
		if resp := admin(root.AccessToken, "bob", "enable"); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("enable: %d %s, want 204", resp.StatusCode, resp.body)
		}
		resp := login("bob")
		var tb proto.TokenBody
		decodeBody(t, resp, http.StatusOK, &tb)
		openSocket(t, ts.URL, tb.AccessToken, true)
		// The sessions revoked on disabling stay revoked.
		wantError(t, do(t, ts.URL, request{method: "POST", path: "/api/auth/refresh", cookie: bobCookie}), http.StatusUnauthorized, proto.CodeUnauthorized)
	})
}

// TestRefreshServerFaultKeepsCookie: a refresh that fails on the server's side (here the
// database is closed under it) answers 500 and leaves the cookie alone, so the user stays
// signed in once the server recovers; a refused token is cleared.
func TestRefreshServerFaultKeepsCookie(t *testing.T) {
	t.Parallel()
	// A store of its own, not storetest's: it is closed under the server, which a consistency
	// check at the end could not read.
	st, err := store.Open(filepath.Join(t.TempDir(), "kaiwa.db"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Registration: true}, st, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		srv.Close()
		st.Close()
	})
	_, cookie := signup(t, ts.URL, "alice")
	if resp := do(t, ts.URL, request{method: "POST", path: "/api/auth/refresh", cookie: "made.up"}); len(resp.Cookies()) == 0 {
		t.Error("a refused refresh token was not cleared")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	resp := do(t, ts.URL, request{method: "POST", path: "/api/auth/refresh", cookie: cookie})
	wantError(t, resp, http.StatusInternalServerError, proto.CodeInternal)
	if set := resp.Header.Values("Set-Cookie"); len(set) != 0 {
		t.Errorf("a server fault set cookies %q, want the refresh cookie left alone", set)
	}
}

// records is a slog handler that keeps every record, for tests that read the log.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *records) WithGroup(string) slog.Handler            { return h }
func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}

// find returns the records with that message, and those at level Error or above.
func (h *records) find(msg string) (found, errs []slog.Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		if r.Message == msg {
			found = append(found, r)
		}
		if r.Level >= slog.LevelError {
			errs = append(errs, r)
		}
	}
	return found, errs
}

// TestLoginAbandoned: a client that gives up while its login waits for a hash is neither an
// error of the server nor a failed sign-in.
func TestLoginAbandoned(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	a, err := auth.New(st, auth.Config{HashConcurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	logs := &records{}
	met := metrics.New()
	mux := http.NewServeMux()
	api.New(api.Config{Registration: true, Metrics: met}, st, a, auth.NewThrottle(auth.ThrottleConfig{}, nil), slog.New(logs)).Register(mux)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	signup(t, ts.URL, "alice")
	login := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, "POST", ts.URL+"/api/auth/login", strings.NewReader(`{"username":"alice","password":"correct horse"}`))
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("login: %d", resp.StatusCode)
		}
		return nil
	}
	// Each round keeps the one hashing slot busy with good logins and sends one more that its
	// client abandons while it waits; a round may miss (the abandoned one got the slot first).
	deadline := time.Now().Add(60 * time.Second)
	for round := 1; ; round++ {
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() { login(context.Background()) })
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond*time.Duration(round))
		if err := login(ctx); err == nil {
			t.Logf("round %d: the login finished before its client gave up", round)
		}
		cancel()
		wg.Wait()
		if found, _ := logs.find("login_abandoned"); len(found) > 0 || time.Now().After(deadline) {
			break
		}
	}
	// The server notices the abandon when the hash slot is free or the client's context ends;
	// give it time to log.
	var found, errs []slog.Record
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if found, errs = logs.find("login_abandoned"); len(found) > 0 {
			break
		}
	}
	if len(found) == 0 {
		t.Fatal("no login_abandoned in the log")
	}
	for _, r := range found {
		if r.Level >= slog.LevelWarn {
			t.Errorf("login_abandoned at level %v, want below warn", r.Level)
		}
	}
	for _, r := range errs {
		t.Errorf("error in the log: %s", r.Message)
	}
	var failures dto.Metric
	if err := met.LoginFailures.Write(&failures); err != nil {
		t.Fatal(err)
	}
	if n := failures.GetCounter().GetValue(); n != 0 {
		t.Errorf("%v failed logins counted, want 0: an abandoned login is no failure", n)
	}
}
