package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"kaiwa/server"
	"kaiwa/server/servertest"
	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// scrape reads /metrics and returns every sample by its series.
func scrape(t *testing.T, baseURL string) map[string]float64 {
	t.Helper()
	return servertest.Metrics(t, nil, baseURL)
}

// waitMetric scrapes until series has the value want, for up to 5 s: some counts land just
// after the frame that a test waits for.
func waitMetric(t *testing.T, baseURL, series string, want float64) {
	t.Helper()
	waitMetricTo(t, baseURL, series, fmt.Sprint(want), func(got float64) bool { return got == want })
}

// waitMetricAtLeast waits until the series is present with a value of at least least.
func waitMetricAtLeast(t *testing.T, baseURL, series string, least float64) {
	t.Helper()
	waitMetricTo(t, baseURL, series, fmt.Sprint("at least ", least), func(got float64) bool { return got >= least })
}

// waitMetricTo waits up to 5 s for the series to be present with a value that satisfies ok,
// described by want.
func waitMetricTo(t *testing.T, baseURL, series, want string, ok func(float64) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, present := scrape(t, baseURL)[series]
		if present && ok(got) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (present %t), want %s", series, got, present, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, server.Config{})
	before := scrape(t, ts.URL)
	for _, series := range []string{
		"kaiwa_connections", "kaiwa_rooms", "kaiwa_messages_in_total", "kaiwa_messages_out_total",
		"kaiwa_commit_seconds_count", "kaiwa_queue_overflows_total", "kaiwa_refresh_reuse_total",
		"kaiwa_login_throttled_total", "go_goroutines", "process_open_fds",
	} {
		if _, ok := before[series]; !ok {
			t.Errorf("/metrics has no %s", series)
		}
	}

	alice := ts.connect(t, ts.register(t, "alice").AccessToken)
	bob := ts.connect(t, ts.register(t, "bob").AccessToken)
	for _, s := range []*socket{alice, bob} {
		s.write(proto.Join{Type: proto.TypeJoin, Room: "general"})
		s.next(proto.TypeJoined)
	}
	for _, id := range []string{"m1", "m2", "m3"} {
		alice.write(proto.Send{Type: proto.TypeSend, Room: "general", ID: id, Text: "hello"})
		alice.next(proto.TypeAck)
	}
	alice.write(proto.Send{Type: proto.TypeSend, Room: "general", ID: "m1", Text: "hello"}) // a retry
	alice.next(proto.TypeAck)
	for range 3 {
		bob.next(proto.TypeMessage)
	}
	waitMetric(t, ts.URL, "kaiwa_connections", 2)
	waitMetric(t, ts.URL, "kaiwa_rooms", 1)
	waitMetric(t, ts.URL, "kaiwa_messages_in_total", 3)
	waitMetric(t, ts.URL, "kaiwa_messages_out_total", 6) // three messages to two members
	if n := scrape(t, ts.URL)["kaiwa_commit_seconds_count"]; n < 1 || n > 4 {
		t.Errorf("kaiwa_commit_seconds_count = %v, want one per batch: 1 to 4", n)
	}
	bob.ws.Close(1000, "")
	waitMetric(t, ts.URL, "kaiwa_connections", 1)

	// Refused credentials, by kind.
	ctx := context.Background()
	api := client.NewAPI(ts.URL, nil)
	// Wrong passwords until the throttle answers: five with the default budget, one more if
	// the budget refilled an attempt meanwhile (one every 30 s, and hashing may be that slow
	// on a loaded machine).
	failures := 0
	for {
		_, err := api.Login(ctx, "alice", "wrong horse")
		if err == nil {
			t.Fatal("login with a wrong password succeeded")
		}
		if strings.Contains(err.Error(), proto.CodeTooManyAttempts) {
			break
		}
		if failures++; failures > 10 {
			t.Fatalf("%d failed logins and no %s", failures, proto.CodeTooManyAttempts)
		}
	}
	if failures < 5 {
		t.Errorf("throttled after %d failures, want 5", failures)
	}
	waitMetric(t, ts.URL, `kaiwa_auth_failures_total{kind="login"}`, float64(failures))
	waitMetric(t, ts.URL, "kaiwa_login_throttled_total", 1)
	s, _, err := ts.dial(t, proto.Subprotocol, proto.BearerProtocol+"not-a-token")
	if err != nil {
		t.Fatal(err)
	}
	s.closeCode()
	req, _ := http.NewRequest("GET", ts.URL+"/api/me", nil)
	req.Header.Set("Authorization", "Bearer not-a-token")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	waitMetric(t, ts.URL, `kaiwa_auth_failures_total{kind="token"}`, 2)
	req, _ = http.NewRequest("POST", ts.URL+"/api/auth/refresh", nil)
	req.AddCookie(&http.Cookie{Name: proto.RefreshCookie, Value: "made.up"})
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	waitMetric(t, ts.URL, `kaiwa_auth_failures_total{kind="refresh"}`, 1)
}

// TestMetricsPerServer: two servers in one process count apart.
func TestMetricsPerServer(t *testing.T) {
	t.Parallel()
	a := newTestServer(t, server.Config{})
	b := newTestServer(t, server.Config{})
	s := a.connect(t, a.register(t, "alice").AccessToken)
	s.next(proto.TypeHello)
	waitMetric(t, a.URL, "kaiwa_connections", 1)
	if got := scrape(t, b.URL)["kaiwa_connections"]; got != 0 {
		t.Errorf("the other server counts %v connections", got)
	}
}
