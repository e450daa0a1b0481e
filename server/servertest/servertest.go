// Package servertest starts whole Kaiwa servers for tests: a real bbolt file in a temporary
// directory and a real HTTP server on a loopback port, with nothing mocked.
package servertest

import (
	"bufio"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"kaiwa/server"
	"kaiwa/server/store"
	"kaiwa/server/store/storetest"
)

// Server is a running Kaiwa. Its URL is the embedded httptest.Server's.
type Server struct {
	*httptest.Server
	Store *store.Store
	Kaiwa *server.Server
}

// Start starts Kaiwa with cfg over a new database in tb.TempDir(), logging to log (nil: nowhere).
// It serves as `kaiwa serve` does: with the server's timeouts and on a listener with its
// connection caps. When the test ends it stops the server, checks the file's consistency and
// closes it.
func Start(tb testing.TB, cfg server.Config, log *slog.Logger) *Server {
	tb.Helper()
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	st := storetest.Open(tb) // registered first, so closed last
	srv, err := server.New(cfg, st, log)
	if err != nil {
		tb.Fatal(err)
	}
	ts := Serve(tb, srv, log)
	tb.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	return &Server{Server: ts, Store: st, Kaiwa: srv}
}

// Serve serves srv on a loopback port as `kaiwa serve` does: with the server's timeouts and on a
// listener with its connection caps. The caller closes the returned server, then srv.
func Serve(tb testing.TB, srv *server.Server, log *slog.Logger) *httptest.Server {
	tb.Helper()
	ln, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.Listener.Close()
	ts.Listener = ln
	ts.Config = server.HTTPServer("", srv.Handler(), log)
	ts.Start()
	return ts
}

// Metrics reads base's /metrics with client (nil: http.DefaultClient) and returns every sample
// by its series as written (`name` or `name{label="v"}`). It fails tb on anything but a 200
// in Prometheus' text format.
func Metrics(tb testing.TB, client *http.Client, base string) map[string]float64 {
	tb.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		tb.Fatalf("/metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			tb.Fatalf("/metrics line %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("/metrics: %v", err)
	}
	return samples
}
