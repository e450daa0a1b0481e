package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"kaiwa/shared/client"
)

// chatClient is one user's client.Session and everything it was told, per room.
type chatClient struct {
	name string
	sess *client.Session

	mu    sync.Mutex
	seqs  map[string][]uint64          // room → seqs received, in order
	acked map[string]map[string]uint64 // room → client id → seq
	sent  map[string][]string          // room → client ids sent
}

func (c *chatClient) collect(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-c.sess.Events():
			c.mu.Lock()
			switch ev.Kind {
			case client.EventMessage:
				c.seqs[ev.Room] = append(c.seqs[ev.Room], ev.Message.Seq)
			case client.EventAck:
				c.acked[ev.Room][ev.ID] = ev.Seq
			}
			c.mu.Unlock()
		}
	}
}

// TestRestartUnderLoad: clients in several rooms send while every one of them receives; the
// server process is killed and started again on the same address and file. Every client must
// resume by itself: each of its sends acked once, and in every room each seq from its first to
// the room's last received exactly once, in order.
func TestRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a server under load")
	}
	t.Parallel()
	const users, perUser = 8, 12
	rooms := []string{"general", "ops", "random"}
	db := filepath.Join(t.TempDir(), "kaiwa.db")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := startKaiwa(t, db, "-addr", addr)

	// No overall timeout: registrations on a loaded machine may take long, and the wait for the
	// catch-up below has its own bound.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var clients []*chatClient
	for i := range users {
		api := client.NewAPI(p.base, nil)
		tb, err := api.Register(ctx, fmt.Sprint("user", i), "correct horse")
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			for _, r := range rooms[1:] {
				if _, err := api.CreateRoom(ctx, tb.AccessToken, r); err != nil {
					t.Fatal(err)
				}
			}
		}
		c := &chatClient{
			name: tb.User.Name, sess: client.NewSession(api, client.Options{Token: &tb, MaxBackoff: 500 * time.Millisecond}),
			seqs: map[string][]uint64{}, acked: map[string]map[string]uint64{}, sent: map[string][]string{},
		}
		for _, r := range rooms {
			c.acked[r] = map[string]uint64{}
			c.sess.JoinAfter(r, 0)
		}
		go c.collect(ctx)
		go c.sess.Run(ctx)
		clients = append(clients, c)
	}
	send := func(round int) {
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := range perUser {
					r := rooms[n%len(rooms)]
					id := c.sess.Send(r, fmt.Sprintf("%s says %d.%d", c.name, round, n))
					c.mu.Lock()
					c.sent[r] = append(c.sent[r], id)
					c.mu.Unlock()
					time.Sleep(40 * time.Millisecond)
				}
			}()
		}
		wg.Wait()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		send(0)
		send(1)
	}()
	time.Sleep(700 * time.Millisecond)
	p.kill()
	restarted := startKaiwa(t, db, "-addr", addr)
	<-done

	// Every send gets its ack, every client catches up with every room.
	lastSeq := map[string]uint64{}
	deadline := time.Now().Add(60 * time.Second)
	for {
		pending := 0
		for _, c := range clients {
			pending += len(c.sess.Outbox())
		}
		if pending == 0 {
			rs, err := client.NewAPI(restarted.base, nil).Rooms(ctx, clients[0].sess.AccessToken())
			if err != nil {
				t.Fatal(err)
			}
			caught := true
			for _, r := range rs {
				lastSeq[r.Name] = r.LastSeq
				for _, c := range clients {
					c.mu.Lock()
					s := c.seqs[r.Name]
					caught = caught && len(s) > 0 && s[len(s)-1] == r.LastSeq
					c.mu.Unlock()
				}
			}
			if caught {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("clients did not catch up within 60 s of the restart (%d sends pending)", pending)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()

	total := 0
	for _, r := range rooms {
		total += int(lastSeq[r])
	}
	if want := users * perUser * 2; total != want {
		t.Errorf("%d messages stored in all rooms, want %d: one per send", total, want)
	}
	for _, c := range clients {
		c.mu.Lock()
		for _, r := range rooms {
			s := c.seqs[r]
			for i := 1; i < len(s); i++ {
				if s[i] != s[i-1]+1 {
					t.Errorf("%s in %s: seq %d after %d", c.name, r, s[i], s[i-1])
				}
			}
			if len(s) == 0 || s[0] != 1 {
				t.Errorf("%s in %s: received %v, want from seq 1", c.name, r, s[:min(3, len(s))])
			}
			for _, id := range c.sent[r] {
				seq, ok := c.acked[r][id]
				if !ok {
					t.Errorf("%s in %s: send %s never acked", c.name, r, id)
				} else if !slices.Contains(s, seq) {
					t.Errorf("%s in %s: own message %s (seq %d) never received", c.name, r, id, seq)
				}
			}
		}
		c.mu.Unlock()
	}
	acks := map[string]uint64{}
	for _, c := range clients {
		for r, m := range c.acked {
			for id, seq := range m {
				if r == "general" {
					acks[ackKey(c.name, id)] = seq
				}
			}
		}
	}
	restarted.kill()
	verifyHistory(t, db, "general", acks)
}
