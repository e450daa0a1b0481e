package api_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"kaiwa/server"
	"kaiwa/server/api"
	"kaiwa/server/auth"
	"kaiwa/server/auth/authtest"
	"kaiwa/shared/proto"
)

// fromAddress returns an HTTP client whose connections leave from the loopback address ip,
// which the server sees as another client IP.
func fromAddress(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// wantRateLimited fails unless resp is 429 too_many_requests with Retry-After of at most
// AbuseInterval.
func wantRateLimited(t *testing.T, resp response) {
	t.Helper()
	wantError(t, resp, http.StatusTooManyRequests, proto.CodeTooManyRequests)
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 || n > int(api.AbuseInterval/time.Second) {
		t.Errorf("Retry-After %q, want whole seconds from 1 to %d", resp.Header.Get("Retry-After"), api.AbuseInterval/time.Second)
	}
}

func TestAbuseLimits(t *testing.T) {
	t.Parallel()
	t.Run("registrations per client IP", func(t *testing.T) {
		t.Parallel()
		clk := authtest.NewClock(time.Now())
		ts := newAPIServer(t, clk.Now, auth.ThrottleConfig{})
		body := func(i int) string {
			return `{"username":"user` + strconv.Itoa(i) + `","password":"correct horse"}`
		}
		register := func(i int) response {
			return do(t, ts.URL, request{method: "POST", path: "/api/auth/register", body: body(i)})
		}
		for i := range api.AbuseBurst {
			if resp := register(i); resp.StatusCode != http.StatusCreated {
				t.Fatalf("registration %d of the burst: %d %s", i+1, resp.StatusCode, resp.body)
			}
		}
		wantRateLimited(t, register(100))
		// A badly formed sign-up costs nothing and is answered as such.
		wantError(t, do(t, ts.URL, request{method: "POST", path: "/api/auth/register", body: `{"username":"x","password":"correct horse"}`}),
			http.StatusBadRequest, proto.CodeInvalidUsername)
		// Another address is not limited.
		req, err := http.NewRequestWithContext(context.Background(), "POST", ts.URL+"/api/auth/register", strings.NewReader(body(200)))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := fromAddress("127.0.0.2").Do(req)
		if err != nil {
			t.Fatalf("connect from 127.0.0.2: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("registration from another address: %d", resp.StatusCode)
		}
		clk.Advance(api.AbuseInterval)
		if resp := register(101); resp.StatusCode != http.StatusCreated {
			t.Fatalf("registration after %v: %d %s", api.AbuseInterval, resp.StatusCode, resp.body)
		}
		wantRateLimited(t, register(102))
	})
	t.Run("room creations per user", func(t *testing.T) {
		t.Parallel()
		clk := authtest.NewClock(time.Now())
		ts := newAPIServer(t, clk.Now, auth.ThrottleConfig{})
		alice, _ := signup(t, ts.URL, "alice")
		bob, _ := signup(t, ts.URL, "bob")
		create := func(token, room string) response {
			return do(t, ts.URL, request{method: "POST", path: "/api/rooms", token: token, body: `{"name":"` + room + `"}`})
		}
		for i := range api.AbuseBurst {
			if resp := create(alice.AccessToken, "a"+strconv.Itoa(i)); resp.StatusCode != http.StatusCreated {
				t.Fatalf("room %d of the burst: %d %s", i+1, resp.StatusCode, resp.body)
			}
		}
		wantRateLimited(t, create(alice.AccessToken, "a-more"))
		if _, err := ts.st.Room("a-more"); err == nil {
			t.Error("the refused room was created")
		}
		if resp := create(bob.AccessToken, "b0"); resp.StatusCode != http.StatusCreated {
			t.Errorf("bob's first room while alice is limited: %d %s", resp.StatusCode, resp.body)
		}
		clk.Advance(api.AbuseInterval)
		if resp := create(alice.AccessToken, "a-later"); resp.StatusCode != http.StatusCreated {
			t.Fatalf("room after %v: %d %s", api.AbuseInterval, resp.StatusCode, resp.body)
		}
		wantRateLimited(t, create(alice.AccessToken, "a-later-still"))
	})
	t.Run("on by default in the server, off with RateLimitsOff", func(t *testing.T) {
		t.Parallel()
		for _, off := range []bool{false, true} {
			ts := newServer(t, server.Config{Registration: true, RateLimitsOff: off})
			tb, _ := signup(t, ts.URL, "alice")
			var last response
			for i := range api.AbuseBurst + 5 {
				last = do(t, ts.URL, request{method: "POST", path: "/api/rooms", token: tb.AccessToken, body: `{"name":"r` + strconv.Itoa(i) + `"}`})
				if last.StatusCode != http.StatusCreated {
					break
				}
			}
			if off && last.StatusCode != http.StatusCreated {
				t.Errorf("RateLimitsOff: room creation refused: %d %s", last.StatusCode, last.body)
			}
			if !off {
				wantRateLimited(t, last)
			}
		}
	})
}
