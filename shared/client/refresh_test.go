//go:build !js

package client_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"kaiwa/server"
	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// TestSessionRefreshHook: a session given Options.Refresh refreshes only through it, from the
// start (no token) and on its timer, and connects with what it returns.
func TestSessionRefreshHook(t *testing.T) {
	t.Parallel()
	ts, _ := startServer(t, server.Config{AccessTTL: 2 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	api := client.NewAPI(ts.URL, nil)
	if _, err := api.Register(ctx, "carol", "password-carol"); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	sess := client.NewSession(api, client.Options{Refresh: func(ctx context.Context) (proto.TokenBody, error) {
		calls.Add(1)
		return api.Refresh(ctx)
	}})
	go sess.Run(ctx)
	sess.Join("general")

	tokens := 0
	timeout := time.After(10 * time.Second)
	for tokens < 3 {
		select {
		case ev := <-sess.Events():
			if ev.Kind == client.EventToken {
				tokens++
			}
			if ev.Kind == client.EventLoginRequired {
				t.Fatal("the session ended")
			}
		case <-timeout:
			t.Fatalf("%d tokens within 10 s, want 3", tokens)
		}
	}
	if n := calls.Load(); n < 3 {
		t.Errorf("the hook ran %d times for 3 tokens: the session refreshed around it", n)
	}
}
