//go:build !js

package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"kaiwa/server"
	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

func outboxEntry(sess *client.Session, id string) (client.Pending, bool) {
	for _, p := range sess.Outbox() {
		if p.ID == id {
			return p, true
		}
	}
	return client.Pending{}, false
}

// TestOutboxFailedSends: sends the server refuses for good, and those the client knows it
// would refuse, become failed with their code and are not sent again; Retry sends a failed
// one again, Discard removes one; every change is an EventOutbox.
func TestOutboxFailedSends(t *testing.T) {
	t.Parallel()
	ts, st := startServer(t, server.Config{})
	api, tb := register(t, ts.URL, "alice")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sess := client.NewSession(api, client.Options{Token: &tb, Rooms: map[string]uint64{"general": 0}})
	sub := sess.Subscribe(client.Filter{Kinds: []client.EventKind{client.EventOutbox, client.EventError, client.EventJoinRefused}})
	events := record(ctx, sub.C())
	go sess.Run(ctx)

	later := sess.Send("later", "for a room not joined yet")              // not_joined, from the server
	tooLong := sess.Send("general", strings.Repeat("é", proto.TextMax+1)) // text_too_long, at once
	blank := sess.Send("general", " \t\n ")                               // empty_text, at once
	badRoom := sess.Send("Not A Room", "hello")                           // invalid_room, at once
	sess.Join("missing")
	missing := sess.Send("missing", "to a room that does not exist") // invalid_room, when the join is refused
	ok := sess.Send("general", "fine")
	want := map[string]string{later: proto.CodeNotJoined, tooLong: proto.CodeTextTooLong, blank: proto.CodeEmptyText, badRoom: proto.CodeInvalidRoom, missing: proto.CodeInvalidRoom}
	defer func() {
		if t.Failed() {
			for _, p := range sess.Outbox() {
				t.Logf("outbox: %s %s failed=%v %s", p.Room, p.ID, p.Failed, p.Code)
			}
		}
	}()
	waitFor(t, "every refused send failed and the good one acked", func() bool {
		if _, pending := outboxEntry(sess, ok); pending {
			return false
		}
		for id, code := range want {
			if p, _ := outboxEntry(sess, id); !p.Failed || p.Code != code {
				return false
			}
		}
		return true
	})
	for id, code := range want {
		failedEvents := events.count(func(ev client.Event) bool { return ev.Kind == client.EventOutbox && ev.ID == id && ev.Code == code })
		if failedEvents != 1 {
			t.Errorf("send %s: %d outbox events with code %s, want 1", id, failedEvents, code)
		}
	}
	if n := events.count(func(ev client.Event) bool { return ev.Kind == client.EventJoinRefused && ev.Room == "missing" }); n != 1 {
		t.Errorf("%d join refusals for room missing, want 1", n)
	}

	// A failed send is not sent again by itself: after more sends, the server refused "later" once.
	for range 3 {
		sess.Send("general", "more")
	}
	waitFor(t, "the later sends acked", func() bool { return len(sess.Outbox()) == len(want) })
	if n := events.count(func(ev client.Event) bool { return ev.Kind == client.EventError && ev.ID == later }); n != 1 {
		t.Errorf("the server refused the failed send %d times, want once", n)
	}

	// Retry once the room exists and is joined: the send goes and is stored.
	if _, err := sess.CreateRoom(ctx, "later"); err != nil {
		t.Fatal(err)
	}
	sess.Join("later")
	waitFor(t, "joined later", func() bool { return sess.State() == client.StateConnected })
	sess.Retry(later)
	waitFor(t, "the retried send acked", func() bool { _, pending := outboxEntry(sess, later); return !pending })
	room, err := st.Room("later")
	if err != nil {
		t.Fatal(err)
	}
	if room.LastSeq != 1 {
		t.Errorf("room later holds %d messages, want the retried one", room.LastSeq)
	}

	sess.Discard(tooLong)
	if _, kept := outboxEntry(sess, tooLong); kept {
		t.Error("a discarded send is still in the outbox")
	}
	waitFor(t, "an outbox event without the discarded and the retried send", func() bool {
		return events.count(func(ev client.Event) bool {
			return ev.Kind == client.EventOutbox && ev.ID == tooLong && len(ev.Outbox) == len(want)-2
		}) == 1
	})
}

// TestOutboxTransientRefusals: a send refused for rate (rate_limited) or storage
// (unavailable) stays pending, is sent again after a growing delay (a few times in 6 s, not
// on every tick), and is stored once when the server takes it. The refusals are made by a
// proxy that turns the server's acks into error frames.
func TestOutboxTransientRefusals(t *testing.T) {
	t.Parallel()
	for _, code := range []string{proto.CodeRateLimited, proto.CodeUnavailable} {
		t.Run(code, func(t *testing.T) {
			ts, st := startServer(t, server.Config{})
			p := startProxy(t, ts.Listener.Addr().String())
			api := p.api()
			tb, err := api.Register(context.Background(), "alice", "password-alice")
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			refusing, refused := true, 0
			p.setRewrite(func(msg []byte) []byte {
				if !bytes.Contains(msg, []byte(`"type":"ack"`)) {
					return msg
				}
				mu.Lock()
				defer mu.Unlock()
				if !refusing {
					return msg
				}
				lines := bytes.Split(msg, []byte("\n"))
				for i, line := range lines {
					var ack proto.Ack
					if err := json.Unmarshal(line, &ack); err != nil || ack.Type != proto.TypeAck {
						continue
					}
					refused++
					lines[i], _ = json.Marshal(proto.Error{Type: proto.TypeError, Code: code, Message: "Try again later.", Ref: ack.ID})
				}
				return bytes.Join(lines, []byte("\n"))
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sess := client.NewSession(api, client.Options{Token: &tb, Rooms: map[string]uint64{"general": 0}})
			events := record(ctx, sess.Subscribe(client.Filter{Kinds: []client.EventKind{client.EventOutbox}}).C())
			go sess.Run(ctx)
			id := sess.Send("general", "hello")
			waitFor(t, "the first refusal", func() bool { mu.Lock(); defer mu.Unlock(); return refused > 0 })
			time.Sleep(6 * time.Second) // the window in which retries are counted
			mu.Lock()
			n := refused
			refusing = false
			mu.Unlock()
			if n < 2 || n > 6 {
				t.Errorf("sent %d times in 6 s while refused, want 2 to 6: backoff between 250 ms and 2 s", n)
			}
			waitFor(t, "the send acked once the server takes it", func() bool { _, pending := outboxEntry(sess, id); return !pending })
			if events.count(func(ev client.Event) bool { return ev.Code != "" }) != 0 {
				t.Error("a transient refusal failed the send")
			}
			room, err := st.Room("general")
			if err != nil {
				t.Fatal(err)
			}
			if room.LastSeq != 1 {
				t.Errorf("%d messages stored, want 1", room.LastSeq)
			}
		})
	}
}
