//go:build !js

package client_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"kaiwa/server"
	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// TestSessionCallsNeverBlock: a hundred sends queued before Run (more than any fixed command
// buffer) return at once and are all delivered once Run starts; after Run has ended, every
// method still returns.
func TestSessionCallsNeverBlock(t *testing.T) {
	t.Parallel()
	ts, st := startServer(t, server.Config{})
	api, tb := register(t, ts.URL, "alice")
	sess := client.NewSession(api, client.Options{Token: &tb})
	const n = 100
	queued := make(chan struct{})
	go func() {
		defer close(queued)
		sess.JoinAfter("general", 0)
		for i := range n {
			sess.SendWithID("general", fmt.Sprint("id-", i), fmt.Sprint("message ", i))
		}
	}()
	waitClosed(t, queued, "sends queued before Run")

	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		sess.Run(ctx)
	}()
	waitFor(t, "every queued send acked", func() bool { return len(sess.Outbox()) == 0 })
	room, err := st.Room("general")
	if err != nil {
		t.Fatal(err)
	}
	if room.LastSeq != n {
		t.Fatalf("%d messages stored, want %d", room.LastSeq, n)
	}
	cancel()
	waitClosed(t, ran, "Run after its context ended")

	after := make(chan struct{})
	go func() {
		defer close(after)
		for i := range n {
			sess.Join(fmt.Sprint("room-", i))
			sess.Send("general", "too late")
			sess.Typing("general")
			sess.CheckNow()
		}
		sess.Outbox()
	}()
	waitClosed(t, after, "calls after Run ended")
}

// TestRefusedJoinKeepsMakeBeforeBreak: a session joined to a room that does not exist and to
// a real one rides through token rotations by make-before-break (state stays connected,
// sockets are replaced) and receives every message once, in order; the refused join is
// reported once, not once per socket.
func TestRefusedJoinKeepsMakeBeforeBreak(t *testing.T) {
	t.Parallel()
	ts, _ := startServer(t, server.Config{AccessTTL: 3 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	api, tb := register(t, ts.URL, "alice")
	alice := client.NewSession(api, client.Options{Token: &tb})
	events := record(ctx, alice.Events())
	alice.Join("nowhere")
	alice.JoinAfter("general", 0)
	go alice.Run(ctx)
	waitFor(t, "alice connected", func() bool { return events.count(isState(client.StateConnected)) > 0 })

	bobAPI, bobToken := register(t, ts.URL, "bob")
	bob := client.NewSession(bobAPI, client.Options{Token: &bobToken})
	go bob.Run(ctx)
	bob.JoinAfter("general", 0)
	const n = 40 // one every 250 ms: about four rotations of alice's token
	for i := range n {
		bob.Send("general", fmt.Sprint("message ", i))
		time.Sleep(250 * time.Millisecond)
	}
	isMessage := func(ev client.Event) bool { return ev.Kind == client.EventMessage }
	waitFor(t, "alice received every message", func() bool { return events.count(isMessage) >= n })

	var seqs []uint64
	var states []client.State
	replaced, refused := 0, 0
	for _, ev := range events.snapshot() {
		switch {
		case ev.Kind == client.EventMessage:
			seqs = append(seqs, ev.Message.Seq)
		case ev.Kind == client.EventState:
			states = append(states, ev.State)
		case ev.Kind == client.EventReplaced:
			replaced++
		}
		if ev.Code == proto.CodeInvalidRoom {
			refused++
		}
	}
	for i, seq := range seqs {
		if seq != uint64(i+1) {
			t.Fatalf("message %d has seq %d: lost, duplicated or out of order (%v)", i, seq, seqs)
		}
	}
	if len(states) != 1 || states[0] != client.StateConnected {
		t.Errorf("states %v, want connected only: a rotation became a reconnect", states)
	}
	if replaced < 2 {
		t.Errorf("%d sockets replaced by make-before-break, want at least 2", replaced)
	}
	if refused != 1 {
		t.Errorf("the refused join was reported %d times, want once", refused)
	}
}

// TestBackoffHoldsWhenSocketsDieAfterHello: a server whose every socket dies right after its
// hello sees the session back off, not reconnect in a storm.
func TestBackoffHoldsWhenSocketsDieAfterHello(t *testing.T) {
	t.Parallel()
	ts, _ := startServer(t, server.Config{})
	p := startProxy(t, ts.Listener.Addr().String())
	api, tb := register(t, p.URL(), "alice")
	p.cutAfterHello.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sess := client.NewSession(api, client.Options{Token: &tb})
	record(ctx, sess.Events())
	go sess.Run(ctx)
	waitFor(t, "the first hello", func() bool { return p.hellos.Load() > 0 })
	// Backoff doubles from 250 ms with equal jitter: at least 250+500+1000+2000+4000+8000 ms
	// pass before the seventh reconnect, so a 15 s window holds at most eight sockets.
	time.Sleep(15 * time.Second)
	if n := p.hellos.Load(); n > 8 {
		t.Fatalf("%d sockets within 15 s: the backoff reset on every hello", n)
	} else {
		t.Logf("%d sockets within 15 s", n)
	}
}

// TestFrozenNetworkLeavesConnected: when the network stops carrying anything (nothing is
// closed), the session notices and leaves "connected"; Online brings it back at once once the
// network is back, and Offline takes it offline until Online.
func TestFrozenNetworkLeavesConnected(t *testing.T) {
	t.Parallel()
	ts, _ := startServer(t, server.Config{})
	p := startProxy(t, ts.Listener.Addr().String())
	api, tb := register(t, p.URL(), "alice")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sess := client.NewSession(api, client.Options{Token: &tb})
	events := record(ctx, sess.Events())
	sess.Join("general")
	go sess.Run(ctx)
	waitFor(t, "connected", func() bool { return events.count(isState(client.StateConnected)) > 0 })
	p.freeze()
	waitFor(t, "left connected after the network froze", func() bool {
		evs := events.snapshot()
		for i := len(evs) - 1; i >= 0; i-- {
			if evs[i].Kind == client.EventState {
				return evs[i].State != client.StateConnected
			}
		}
		return false
	})
	p.thaw()
	sess.Online()
	waitFor(t, "connected again after Online", func() bool { return sess.State() == client.StateConnected })
	sess.Offline()
	waitFor(t, "offline after Offline", func() bool { return sess.State() == client.StateOffline })
	hellos := p.hellos.Load()
	sess.Online()
	waitFor(t, "connected after Online", func() bool { return sess.State() == client.StateConnected })
	if p.hellos.Load() != hellos+1 {
		t.Errorf("%d sockets opened to come back online, want 1", p.hellos.Load()-hellos)
	}
}

// TestSessionStartsFromOptions: rooms and an outbox kept from an earlier session are given in
// Options: the session resumes each room after its last seq, sends what was pending (once:
// a send that reached the server before is not stored again) and keeps what had failed.
func TestSessionStartsFromOptions(t *testing.T) {
	t.Parallel()
	ts, st := startServer(t, server.Config{})
	api, tb := register(t, ts.URL, "alice")
	for i := range 3 {
		if _, _, err := st.Append("general", tb.User.ID, "alice", fmt.Sprint("old-", i), fmt.Sprint("old ", i)); err != nil {
			t.Fatal(err)
		}
	}
	sess := client.NewSession(api, client.Options{
		Token: &tb,
		Rooms: map[string]uint64{"general": 1},
		Outbox: []client.Pending{
			{Room: "general", ID: "old-2", Text: "old 2"}, // stored already; its ack was lost
			{Room: "general", ID: "new", Text: "new"},
			{Room: "general", ID: "failed", Text: "x", Failed: true, Code: proto.CodeTextTooLong},
		},
	})
	if n := len(sess.Outbox()); n != 3 {
		t.Fatalf("outbox of %d before Run, want 3", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := sess.Subscribe(client.Filter{Room: "general", Kinds: []client.EventKind{client.EventMessage}})
	go sess.Run(ctx)
	var seqs []uint64
	for len(seqs) < 3 {
		select {
		case ev := <-sub.C():
			seqs = append(seqs, ev.Message.Seq)
		case <-time.After(30 * time.Second):
			t.Fatalf("messages %v within 30 s, want seqs 2 to 4", seqs)
		}
	}
	if seqs[0] != 2 || seqs[1] != 3 || seqs[2] != 4 {
		t.Fatalf("seqs %v, want 2 3 4", seqs)
	}
	waitFor(t, "the pending sends acked", func() bool { return len(sess.Outbox()) == 1 })
	if p := sess.Outbox()[0]; p.ID != "failed" || !p.Failed {
		t.Fatalf("outbox %+v, want the failed send only", p)
	}
	room, err := st.Room("general")
	if err != nil {
		t.Fatal(err)
	}
	if room.LastSeq != 4 {
		t.Fatalf("%d messages stored, want 4", room.LastSeq)
	}
}

// TestStuckSocketDoesNotStallSession: the socket in use stops being read (its path died; new
// connections still work) while the session has much to write to it. The token refresh still
// opens a new socket on time, which takes over by make-before-break (no reconnect), and every
// send, written to the stuck socket first, is stored once.
func TestStuckSocketDoesNotStallSession(t *testing.T) {
	t.Parallel()
	ts, st := startServer(t, server.Config{AccessTTL: 4 * time.Second})
	p := startProxy(t, ts.Listener.Addr().String())
	api := p.api() // its HTTP calls go straight to the server: only the socket gets stuck
	tb, err := api.Register(context.Background(), "alice", "password-alice")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sess := client.NewSession(api, client.Options{Token: &tb})
	events := record(ctx, sess.Events())
	sess.JoinAfter("general", 0)
	go sess.Run(ctx)
	waitFor(t, "connected", func() bool { return events.count(isState(client.StateConnected)) > 0 })
	p.freezeExisting()
	const n = 40 // 16 kB each
	big := strings.Repeat("😀", proto.TextMax)
	for range n {
		sess.Send("general", big)
	}
	waitFor(t, "every send acked", func() bool { return len(sess.Outbox()) == 0 })
	room, err := st.Room("general")
	if err != nil {
		t.Fatal(err)
	}
	if room.LastSeq != n {
		t.Errorf("%d messages stored, want %d", room.LastSeq, n)
	}
	var states []client.State
	for _, ev := range events.snapshot() {
		if ev.Kind == client.EventState {
			states = append(states, ev.State)
		}
	}
	if len(states) != 1 {
		t.Errorf("states %v, want connected only: the stuck socket held the session back", states)
	}
	if events.count(func(ev client.Event) bool { return ev.Kind == client.EventReplaced }) == 0 {
		t.Error("the stuck socket was not replaced by make-before-break")
	}
}
