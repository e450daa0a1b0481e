// Package servertest starts whole Kaiwa servers for tests: a real bbolt file in a temporary
// directory and a real HTTP server on a loopback port, with nothing mocked.
package servertest

import (
	"io"
	"log/slog"
	"net/http/httptest"
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
	ln, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.Listener.Close()
	ts.Listener = ln
	ts.Config = server.HTTPServer("", srv.Handler(), log)
	ts.Start()
	tb.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	return &Server{Server: ts, Store: st, Kaiwa: srv}
}
