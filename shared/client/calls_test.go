//go:build !js

package client_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kaiwa/server"
	"kaiwa/server/store"
	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// TestCallsRefreshOnceAfterExpiry: API calls through the session after its access token
// expired succeed, with one refresh for all of them, made while they wait.
func TestCallsRefreshOnceAfterExpiry(t *testing.T) {
	t.Parallel()
	ts, _ := startServer(t, server.Config{AccessTTL: time.Second})
	api, tb := register(t, ts.URL, "alice")
	var refreshes atomic.Int32
	sess := client.NewSession(api, client.Options{Token: &tb, Refresh: func(ctx context.Context) (proto.TokenBody, error) {
		refreshes.Add(1)
		return api.Refresh(ctx)
	}})
	ctx := context.Background()
	waitFor(t, "the access token expired", func() bool {
		_, err := api.Me(ctx, tb.AccessToken)
		return client.IsCode(err, proto.CodeTokenExpired)
	})
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rooms, err := sess.Rooms(ctx)
			if err == nil && len(rooms) == 0 {
				t.Error("no rooms listed")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a call after expiry: %v", err)
		}
	}
	if _, err := sess.Messages(ctx, "general", client.PageQuery{Limit: proto.PageMax + 1}); err != nil {
		t.Fatalf("history with a limit above the maximum: %v", err)
	}
	if n := refreshes.Load(); n != 1 {
		t.Fatalf("%d refreshes for the calls after expiry, want 1", n)
	}
	if sess.AccessToken() == tb.AccessToken {
		t.Fatal("the session kept the expired token")
	}
}

// TestLimitsFromProto: what the client knows the server would refuse, by shared/proto's rules,
// fails at once with the server's error code, without a request (the server here is gone).
func TestLimitsFromProto(t *testing.T) {
	t.Parallel()
	api := client.NewAPI("http://127.0.0.1:1", nil) // nothing listens there
	sess := client.NewSession(api, client.Options{Token: &proto.TokenBody{AccessToken: "x", ExpiresIn: 600}})
	ctx := context.Background()
	long := strings.Repeat("a", proto.UsernameMax+1)
	for _, tc := range []struct {
		name string
		call func() error
		code string
	}{
		{"short username", func() error { _, err := api.Register(ctx, "ab", "password-ab"); return err }, proto.CodeInvalidUsername},
		{"long username", func() error { _, err := api.Register(ctx, long, "password-x"); return err }, proto.CodeInvalidUsername},
		{"username with a space", func() error { _, err := api.Register(ctx, "a b c", "password-x"); return err }, proto.CodeInvalidUsername},
		{"short password", func() error { _, err := api.Register(ctx, "alice", "short"); return err }, proto.CodeInvalidPassword},
		{"room with capitals", func() error { _, err := sess.CreateRoom(ctx, "General"); return err }, proto.CodeInvalidRoom},
		{"long room", func() error {
			_, err := sess.CreateRoom(ctx, strings.Repeat("r", proto.RoomNameMax+1))
			return err
		}, proto.CodeInvalidRoom},
		{"history of a bad room", func() error { _, err := sess.Messages(ctx, "no/such", client.PageQuery{}); return err }, proto.CodeInvalidRoom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !client.IsCode(err, tc.code) {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
		})
	}
	// Texts: the longest allowed stays pending, one more code point fails.
	ok := sess.Send("general", strings.Repeat("é", proto.TextMax))
	tooLong := sess.Send("general", strings.Repeat("é", proto.TextMax+1))
	for _, p := range sess.Outbox() {
		if p.ID == ok && p.Failed || p.ID == tooLong && p.Code != proto.CodeTextTooLong {
			t.Errorf("send %s: failed=%v code=%q", p.ID, p.Failed, p.Code)
		}
	}
}

// TestSubscriptionsPerRoom: each subscription gets its room's messages, once each, in order,
// while another subscription and the Events channel are never read: the session never waits
// for a consumer.
func TestSubscriptionsPerRoom(t *testing.T) {
	t.Parallel()
	ts, st := startServer(t, server.Config{})
	api, tb := register(t, ts.URL, "alice")
	if _, err := st.CreateRoom("ops"); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"general": 800, "ops": 300} // more than any fixed event buffer
	for room, n := range want {
		reqs := make([]store.AppendRequest, n)
		for i := range reqs {
			reqs[i] = store.AppendRequest{Room: room, UserID: tb.User.ID, From: "alice", ClientID: room + "-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26), Text: "hello"}
		}
		if _, err := st.AppendBatch(reqs); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	sess := client.NewSession(api, client.Options{Token: &tb})
	sess.Events()                            // never read
	stuck := sess.Subscribe(client.Filter{}) // never read
	defer stuck.Close()
	subs := map[string]*client.Subscription{}
	for room := range want {
		subs[room] = sess.Subscribe(client.Filter{Room: room, Kinds: []client.EventKind{client.EventMessage}})
		sess.JoinAfter(room, 0)
	}
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		sess.Run(ctx)
	}()
	var wg sync.WaitGroup
	for room, sub := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var seq uint64
			for ev := range sub.C() {
				if ev.Room != room || ev.Message.Seq != seq+1 {
					t.Errorf("subscription to %s: event of %s with seq %d after %d", room, ev.Room, ev.Message.Seq, seq)
					return
				}
				if seq = ev.Message.Seq; int(seq) == want[room] {
					return
				}
			}
			t.Errorf("subscription to %s ended after seq %d", room, seq)
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	waitClosed(t, done, "every room's messages delivered")

	subs["ops"].Close()
	cancel()
	waitClosed(t, ran, "Run after its context ended")
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for range subs["general"].C() {
		}
		for range subs["ops"].C() {
		}
		for range sess.Subscribe(client.Filter{}).C() {
		}
	}()
	waitClosed(t, ended, "subscriptions closed once the session ended")
}

// TestUnknownFramesPassOn: a frame the session does not handle, even one whose fields do not
// fit proto.Frame (an object where a name was), reaches subscribers as it was received.
func TestUnknownFramesPassOn(t *testing.T) {
	t.Parallel()
	ts, _ := startServer(t, server.Config{})
	p := startProxy(t, ts.Listener.Addr().String())
	api := p.api()
	tb, err := api.Register(context.Background(), "alice", "password-alice")
	if err != nil {
		t.Fatal(err)
	}
	const extra = `{"type":"future","room":"ops","seq":{"of":"a newer protocol"}}`
	p.setRewrite(func(msg []byte) []byte {
		if strings.Contains(string(msg), `"type":"hello"`) {
			return append(msg, "\n"+extra...)
		}
		return msg
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sess := client.NewSession(api, client.Options{Token: &tb})
	sub := sess.Subscribe(client.Filter{Kinds: []client.EventKind{client.EventFrame}})
	go sess.Run(ctx)
	select {
	case ev := <-sub.C():
		if ev.Text != "future" || string(ev.Raw) != extra {
			t.Fatalf("got %q %s, want the room frame as sent", ev.Text, ev.Raw)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no frame within 30 s")
	}
}
