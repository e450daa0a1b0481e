//go:build !js

package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"

	"kaiwa/server"
	"kaiwa/server/store"
	"kaiwa/shared/client"
)

// A session signs in, joins a room, sends a message and sees it come back with its seq.
func ExampleSession() {
	dir, _ := os.MkdirTemp("", "kaiwa-example")
	defer os.RemoveAll(dir)
	st, _ := store.Open(filepath.Join(dir, "kaiwa.db"))
	defer st.Close()
	srv, _ := server.New(server.Config{Registration: true}, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	api := client.NewAPI(ts.URL, nil)
	tb, err := api.Register(ctx, "alice", "correct horse battery")
	if err != nil {
		fmt.Println(err)
		return
	}
	sess := client.NewSession(api, client.Options{Token: &tb})
	go sess.Run(ctx)
	sess.Join("general")
	sess.Send("general", "hello, Kaiwa")
	for ev := range sess.Events() {
		if ev.Kind == client.EventMessage {
			fmt.Printf("#%d %s: %s\n", ev.Message.Seq, ev.Message.From, ev.Message.Text)
			return
		}
	}
	// Output: #1 alice: hello, Kaiwa
}
