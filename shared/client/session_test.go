//go:build !js

package client_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"kaiwa/server"
	"kaiwa/server/servertest"
	"kaiwa/server/store"
	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

func startServer(t *testing.T, cfg server.Config) (*httptest.Server, *store.Store) {
	t.Helper()
	cfg.Registration, cfg.SecureCookies = true, "never"
	k := servertest.Start(t, cfg, nil)
	return k.Server, k.Store
}

// chatter is one signed-in client session and what it received.
type chatter struct {
	name     string
	sess     *client.Session
	mu       sync.Mutex
	seqs     []uint64
	acked    map[string]uint64
	replaced int
	errs     []string
}

func newChatter(t *testing.T, ctx context.Context, base, name string) *chatter {
	t.Helper()
	api := client.NewAPI(base, nil)
	tb, err := api.Register(ctx, name, "password-"+name)
	if err != nil {
		t.Fatal(err)
	}
	c := &chatter{name: name, sess: client.NewSession(api, client.Options{Token: &tb}), acked: map[string]uint64{}}
	go c.collect(ctx)
	go c.sess.Run(ctx)
	return c
}

func (c *chatter) collect(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-c.sess.Events():
			c.mu.Lock()
			switch ev.Kind {
			case client.EventMessage:
				c.seqs = append(c.seqs, ev.Message.Seq)
			case client.EventAck:
				c.acked[ev.ID] = ev.Seq
			case client.EventReplaced:
				c.replaced++
			case client.EventError:
				c.errs = append(c.errs, ev.Code+": "+ev.Text)
			}
			c.mu.Unlock()
		}
	}
}

func (c *chatter) received() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seqs)
}

// TestSessionRidesThroughRotations: with 2 s access tokens, two clients send for 30 s
// while their sessions refresh and replace sockets about every 1.5 s. Every message reaches
// both exactly once, in seq order, without gaps.
func TestSessionRidesThroughRotations(t *testing.T) {
	t.Parallel()
	soak := 30 * time.Second // about 15 token rotations per session; the bench soak runs longer
	if testing.Short() {
		soak = 8 * time.Second
	}
	ts, st := startServer(t, server.Config{AccessTTL: 2 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	chatters := []*chatter{newChatter(t, ctx, ts.URL, "alice"), newChatter(t, ctx, ts.URL, "bob")}
	for _, c := range chatters {
		c.sess.Join("general")
	}
	sent := map[string]bool{}
	var sentMu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range chatters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			stop := time.After(soak)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
					id := c.sess.Send("general", fmt.Sprintf("%s %d", c.name, i))
					sentMu.Lock()
					sent[id] = true
					sentMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()

	// Everything sent must be acked and delivered to both.
	deadline := time.Now().Add(20 * time.Second)
	for {
		room, err := st.Room("general")
		if err != nil {
			t.Fatal(err)
		}
		done := int(room.LastSeq) == len(sent)
		for _, c := range chatters {
			done = done && c.received() == len(sent) && len(c.sess.Outbox()) == 0
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			for _, c := range chatters {
				t.Logf("%s: received %d, outbox %d, errors %v", c.name, c.received(), len(c.sess.Outbox()), c.errs)
			}
			t.Fatalf("stored %d messages, sent %d: not all delivered within 20 s", room.LastSeq, len(sent))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range chatters {
		c.mu.Lock()
		for i, seq := range c.seqs {
			if seq != uint64(i+1) {
				t.Fatalf("%s: message %d has seq %d: lost, duplicated or out of order", c.name, i, seq)
			}
		}
		if len(c.errs) > 0 {
			t.Errorf("%s: error frames: %v", c.name, c.errs)
		}
		if min := int(soak/(3*time.Second)) * 2; c.replaced < min {
			t.Errorf("%s: %d socket replacements, want at least %d", c.name, c.replaced, min)
		}
		t.Logf("%s: %d messages, %d socket replacements", c.name, len(c.seqs), c.replaced)
		c.mu.Unlock()
	}
	msgs, _, err := st.Page("general", nil, new(uint64), proto.PageMax)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if !sent[m.ID] {
			t.Fatalf("stored message %d has an id nobody sent: %q", m.Seq, m.ID)
		}
	}
}
