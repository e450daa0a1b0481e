//go:build !js

package client_test

import (
	"context"
	"fmt"
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
// closed), the session notices and leaves "connected".
func TestFrozenNetworkLeavesConnected(t *testing.T) {
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
}
