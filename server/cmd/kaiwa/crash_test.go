package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"kaiwa/server/store"
	"kaiwa/shared/client"
)

// TestCrashSafety kills the server with SIGKILL at random moments while senders write, and
// restarts it on the same file, 20 times. After every kill the file must be consistent, hold
// every acked message with the seq it was acked with, and number the room's messages 1..last
// with no gap and no duplicate. Each round also resends the ids that got no ack before the
// kill: a send that was stored must be acked with its first seq, not stored again.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts the server 20 times")
	}
	t.Parallel()
	const rounds, senders = 20, 6
	db := filepath.Join(t.TempDir(), "kaiwa.db")
	log := newAckLog()
	users := make([]string, senders)
	tokens := make([]string, senders)
	total := 0
	for round := range rounds {
		p := startKaiwa(t, db)
		if round == 0 {
			// The tokens outlive the process: the signing key and the sessions are in the file.
			for i := range users {
				users[i] = fmt.Sprintf("sender%d", i)
				tb, err := client.NewAPI(p.base, nil).Register(context.Background(), users[i], "correct horse")
				if err != nil {
					t.Fatal(err)
				}
				tokens[i] = tb.AccessToken
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		errs := make(chan error, senders)
		for i := range users {
			retry := log.unacked(users[i])
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- sendLoop(ctx, p.base, users[i], tokens[i], store.DefaultRoom, fmt.Sprintf("r%d", round), retry, log)
			}()
		}
		log.waitFor(t, len(log.snapshot())+1)
		time.Sleep(rand.N(500 * time.Millisecond))
		p.kill()
		wg.Wait()
		cancel()
		// Every sender must have seen the socket die: none may end cleanly before the kill.
		for range senders {
			if err := <-errs; err == nil {
				t.Fatalf("round %d: a sender stopped before the kill", round)
			}
		}
		total = verifyHistory(t, db, store.DefaultRoom, log.snapshot())
		if t.Failed() {
			t.Fatalf("round %d failed; server log:\n%s", round, p.stderr)
		}
	}
	for _, p := range log.problems {
		t.Error(p)
	}
	acked := len(log.snapshot())
	t.Logf("%d rounds: %d messages stored, %d acked", rounds, total, acked)
	if acked < rounds*senders {
		t.Errorf("only %d acks in %d rounds: the senders did not get going", acked, rounds)
	}
}
