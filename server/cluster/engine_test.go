package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"kaiwa/server/auth"
	"kaiwa/server/auth/authtest"
	"kaiwa/server/cluster"
	"kaiwa/server/cluster/clustertest"
	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

// TestEngine runs on one three-node JetStream cluster (forming it takes seconds) with one engine
// per node, opened at once so that their init operations race.
func TestEngine(t *testing.T) {
	t.Parallel()
	nodes := clustertest.Nodes(t, 3)
	engines := clustertest.Engines(t, nodes)
	a, b, c := engines[0], engines[1], engines[2]
	outer := t

	t.Run("init race gives one signing key", func(t *testing.T) {
		key := a.SigningKey()
		if len(key) < 32 {
			t.Fatalf("signing key of %d bytes", len(key))
		}
		for i, e := range engines {
			if !bytes.Equal(e.SigningKey(), key) {
				t.Errorf("engine %d has another signing key", i)
			}
		}
	})

	t.Run("user created on one node signs in on another", func(t *testing.T) {
		u, err := a.CreateUser("ann", "hash", false)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		sess := store.Session{ID: "s-ann", UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour), Current: [][]byte{{1}}}
		if err := a.CreateSession(sess); err != nil {
			t.Fatal(err)
		}
		// b may not have applied them yet: its reads catch up when they miss.
		got, err := b.UserByName("ann")
		if err != nil || got.ID != u.ID {
			t.Fatalf("UserByName on b = %+v, %v; want id %s", got, err, u.ID)
		}
		s, err := b.Session("s-ann")
		if err != nil || s.UserID != u.ID {
			t.Fatalf("Session on b = %+v, %v", s, err)
		}
		if _, err := c.CreateUser("ann", "other", false); !errors.Is(err, store.ErrUsernameTaken) {
			t.Fatalf("same name on c: %v, want ErrUsernameTaken", err)
		}
		if _, err := c.UserByName("nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown user on c: %v, want ErrNotFound", err)
		}
	})

	t.Run("concurrent appends on three nodes give one gapless order", func(t *testing.T) {
		const perNode = 20
		if _, err := a.CreateRoom("race"); err != nil {
			t.Fatal(err)
		}
		users := make([]store.User, len(engines))
		for i, e := range engines {
			u, err := e.CreateUser(fmt.Sprintf("writer%d", i), "hash", false)
			if err != nil {
				t.Fatal(err)
			}
			users[i] = u
		}
		var wg sync.WaitGroup
		errs := make(chan error, len(engines)*perNode)
		for i, e := range engines {
			wg.Go(func() {
				for j := range perNode {
					m, dup, err := e.Append("race", users[i].ID, users[i].Name, fmt.Sprintf("c%d-%d", i, j), fmt.Sprintf("%d/%d", i, j))
					if err == nil && (dup || m.Seq == 0) {
						err = fmt.Errorf("append %d/%d: dup %v seq %d", i, j, dup, m.Seq)
					}
					if err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		want := roomLog(t, a, "race")
		if len(want) != len(engines)*perNode {
			t.Fatalf("%d messages on a, want %d", len(want), len(engines)*perNode)
		}
		for i, line := range want {
			if line.seq != uint64(i+1) {
				t.Fatalf("message %d has seq %d: a gap", i, line.seq)
			}
		}
		for i, e := range engines[1:] {
			if got := roomLog(t, e, "race"); !slices.Equal(got, want) {
				t.Errorf("engine %d's log differs from a's:\n%v\n%v", i+1, got, want)
			}
		}
	})

	t.Run("one of two concurrent swaps of a session wins", func(t *testing.T) {
		u, err := a.CreateUser("swapper", "hash", false)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		old := store.Session{ID: "s-swap", UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour), Current: [][]byte{{0}}}
		if err := a.CreateSession(old); err != nil {
			t.Fatal(err)
		}
		for round := range 5 {
			cur, err := b.Session("s-swap")
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Barrier(context.Background()); err != nil {
				t.Fatal(err)
			}
			var wins []int
			var mu sync.Mutex
			var wg sync.WaitGroup
			for i, e := range []*cluster.Engine{b, c} {
				wg.Go(func() {
					next := cur
					next.Current = [][]byte{{byte(round), byte(i + 1)}}
					ok, err := e.SwapSession("s-swap", cur, next)
					if err != nil {
						t.Error(err)
					}
					if ok {
						mu.Lock()
						wins = append(wins, i)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if len(wins) != 1 {
				t.Fatalf("round %d: %d swaps won, want 1", round, len(wins))
			}
			if err := a.Barrier(context.Background()); err != nil {
				t.Fatal(err)
			}
			got, err := a.Session("s-swap")
			if err != nil {
				t.Fatal(err)
			}
			if want := []byte{byte(round), byte(wins[0] + 1)}; len(got.Current) != 1 || !bytes.Equal(got.Current[0], want) {
				t.Fatalf("round %d: a has %v, want the winner's %v", round, got.Current, want)
			}
		}
	})

	t.Run("concurrent updates of a session on two nodes both apply", func(t *testing.T) {
		u, err := a.CreateUser("updater", "hash", false)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		if err := a.CreateSession(store.Session{ID: "s-upd", UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		const each = 5
		var wg sync.WaitGroup
		for i, e := range []*cluster.Engine{b, c} {
			wg.Go(func() {
				for j := range each {
					if _, err := e.UpdateSession("s-upd", func(s *store.Session) error {
						s.Current = append(s.Current, []byte{byte(i), byte(j)})
						return nil
					}); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		if err := a.Barrier(context.Background()); err != nil {
			t.Fatal(err)
		}
		got, err := a.Session("s-upd")
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Current) != 2*each {
			t.Fatalf("%d updates kept, want %d: %v", len(got.Current), 2*each, got.Current)
		}
	})

	t.Run("refresh rotation, grace and reuse hold across nodes", func(t *testing.T) {
		clock := authtest.NewClock(time.Now())
		var auths []*auth.Auth
		for _, e := range engines {
			a, err := auth.New(e, auth.Config{Now: clock.Now, HashConcurrency: 1})
			if err != nil {
				t.Fatal(err)
			}
			auths = append(auths, a)
		}
		ctx := context.Background()
		g0, err := auths[0].Register(ctx, "rita", "correct horse")
		if err != nil {
			t.Fatal(err)
		}
		g1, err := auths[1].Refresh(ctx, g0.Refresh)
		if err != nil {
			t.Fatalf("rotation on another node: %v", err)
		}
		// Two tabs on two nodes present the same token at once: both get a token of the
		// session (one the successor, the other a sibling), neither revokes it.
		var grants [2]auth.Grant
		var errs [2]error
		var wg sync.WaitGroup
		for i := range grants {
			wg.Go(func() { grants[i], errs[i] = auths[i+1].Refresh(ctx, g1.Refresh) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil || grants[i].SessionID != g0.SessionID {
				t.Fatalf("concurrent refresh %d: %+v, %v", i, grants[i], err)
			}
		}
		if grants[0].Refresh == grants[1].Refresh {
			t.Fatal("two concurrent refreshes got the same token")
		}
		clock.Advance(auth.RefreshGrace + time.Second)
		if _, err := auths[2].Refresh(ctx, g0.Refresh); !errors.Is(err, auth.ErrRefreshReused) {
			t.Fatalf("replay after the grace on a third node: %v, want ErrRefreshReused", err)
		}
		for i, a := range auths {
			if _, err := a.Refresh(ctx, grants[0].Refresh); !errors.Is(err, auth.ErrUnauthorized) {
				t.Errorf("node %d: the newest token after the reuse: %v, want ErrUnauthorized", i, err)
			}
		}
	})

	t.Run("refusals are the same on every node", func(t *testing.T) {
		if _, err := b.CreateRoom("race"); !errors.Is(err, store.ErrRoomExists) {
			t.Fatalf("existing room on b: %v, want ErrRoomExists", err)
		}
		if _, _, err := c.Append("nowhere", "1", "ann", "x", "hi"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("append to a missing room on c: %v, want ErrNotFound", err)
		}
		if err := a.DeleteRoom("nowhere"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete of a missing room: %v, want ErrNotFound", err)
		}
	})

	t.Run("every node's observer hears every change", func(t *testing.T) { observedEverywhere(t, engines) })
	t.Run("an observer reads without waiting for itself", func(t *testing.T) { observerReadsWithoutWaiting(t, b) })

	t.Run("restarted engine resumes from its applied seq", func(t *testing.T) {
		u, err := a.UserByName("writer0")
		if err != nil {
			t.Fatal(err)
		}
		// The last operation stored succeeds, so the cache records its seq (a refused one
		// changes nothing and records nothing).
		if _, _, err := a.Append("race", u.ID, u.Name, "before-restart", "last before c stops"); err != nil {
			t.Fatal(err)
		}
		if err := c.Barrier(context.Background()); err != nil {
			t.Fatal(err)
		}
		applied := c.Applied()
		if stored, err := c.AppliedSeq(); err != nil || stored != applied {
			t.Fatalf("cache records seq %d (%v), the applier is at %d", stored, err, applied)
		}
		path := c.Path()
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		for j := range 5 {
			if _, _, err := a.Append("race", u.ID, u.Name, fmt.Sprintf("after-%d", j), "while c was down"); err != nil {
				t.Fatal(err)
			}
		}
		c2, err := clustertest.Open(nodes[2], path)
		if err != nil {
			t.Fatal(err)
		}
		engines[2] = c2
		outer.Cleanup(func() { c2.Close() })
		if got := c2.ResumedFrom(); got != applied {
			t.Fatalf("resumed from %d, want %d", got, applied)
		}
		if err := c2.Barrier(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got, want := roomLog(t, c2, "race"), roomLog(t, a, "race"); !slices.Equal(got, want) {
			t.Fatalf("restarted engine's log differs:\n%v\n%v", got, want)
		}
	})

	t.Run("a node connected with defaults leaves the stream's replicas alone", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), clustertest.StartTimeout)
		defer cancel()
		tool, err := cluster.Start(ctx, cluster.Config{URLs: []string{nodes[0].ClientURL()}})
		if err != nil {
			t.Fatal(err)
		}
		defer tool.Close()
		if n, err := tool.Replicas(ctx); err != nil || n != len(nodes) {
			t.Fatalf("stream has %d replicas (%v), want %d", n, err, len(nodes))
		}
	})

	// Last: it shuts a NATS node down for good.
	t.Run("the stream leader's NATS node lost under load loses no acknowledged message", func(t *testing.T) {
		leader, err := nodes[0].StreamLeader(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var victim *cluster.Node
		var writers []*cluster.Engine
		for i, n := range nodes {
			if n.Name() == leader {
				victim = n
			} else {
				writers = append(writers, engines[i])
			}
		}
		if victim == nil || len(writers) != 2 {
			t.Fatalf("stream leader %q is none of the nodes", leader)
		}
		lostUnderLoad(t, victim, writers[0], writers[1])
	})
}

// lostUnderLoad appends from a and b without pause, shuts down, halfway, the NATS node of
// neither, and checks that the writes went on and that every acknowledged message is stored
// with its acknowledged seq on both, in one gapless order.
func lostUnderLoad(t *testing.T, victim *cluster.Node, a, b *cluster.Engine) {
	t.Helper()
	const room, before, after = "load", 20, 20
	if _, err := a.CreateRoom(room); err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		acked  = map[string]uint64{} // client id → seq
		killed = make(chan struct{})
		done   = make(chan struct{})
		wg     sync.WaitGroup
	)
	for i, e := range []*cluster.Engine{a, b} {
		u, err := e.CreateUser(fmt.Sprintf("loader%d", i), "hash", false)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			sinceKill := 0
			for j := 0; ; j++ {
				select {
				case <-done:
					return
				default:
				}
				id := fmt.Sprintf("l%d-%d", i, j)
				m, _, err := e.Append(room, u.ID, u.Name, id, "under load")
				if err != nil {
					t.Errorf("append %s: %v", id, err)
					return
				}
				mu.Lock()
				acked[id] = m.Seq
				mu.Unlock()
				select {
				case <-killed:
					if sinceKill++; sinceKill == after {
						return
					}
				default:
				}
			}
		})
	}
	deadline := time.After(60 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= before {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("only %d appends acknowledged in 60 s", n)
		case <-time.After(10 * time.Millisecond):
		}
	}
	victim.Close()
	close(killed)
	wg.Wait()
	close(done)
	if t.Failed() {
		return
	}
	logA, logB := roomLog(t, a, room), roomLog(t, b, room)
	if !slices.Equal(logA, logB) {
		t.Fatalf("the two nodes' logs differ:\n%v\n%v", logA, logB)
	}
	stored := map[string]uint64{}
	for i, line := range logA {
		if line.seq != uint64(i+1) {
			t.Fatalf("message %d has seq %d: a gap", i, line.seq)
		}
		stored[line.id] = line.seq
	}
	for id, seq := range acked {
		if stored[id] != seq {
			t.Errorf("acknowledged %s at seq %d, stored at %d", id, seq, stored[id])
		}
	}
	t.Logf("%d messages acknowledged, %d stored, %d after the node was lost", len(acked), len(logA), 2*after)
}

// TestEngineRestartFromFreshCache checks that a node whose cache was lost rebuilds it from the
// stream alone.
func TestEngineRestartFromFreshCache(t *testing.T) {
	t.Parallel()
	nodes := clustertest.Nodes(t, 1)
	e := clustertest.Engines(t, nodes)[0]
	u, err := e.CreateUser("solo", "hash", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Append(store.DefaultRoom, u.ID, u.Name, "c1", "hello"); err != nil {
		t.Fatal(err)
	}
	fresh, err := clustertest.Open(nodes[0], filepath.Join(t.TempDir(), "fresh.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if !bytes.Equal(fresh.SigningKey(), e.SigningKey()) {
		t.Fatal("the rebuilt cache has another signing key")
	}
	if got, want := roomLog(t, fresh, store.DefaultRoom), roomLog(t, e, store.DefaultRoom); !slices.Equal(got, want) || len(got) != 1 {
		t.Fatalf("rebuilt log %v, want %v", got, want)
	}
}

type logLine struct {
	seq        uint64
	id, author string
	text       string
}

// roomLog reads a room's whole history from e's cache once e has caught up with the stream.
func roomLog(t *testing.T, e *cluster.Engine, room string) []logLine {
	t.Helper()
	if err := e.Barrier(context.Background()); err != nil {
		t.Fatal(err)
	}
	msgs, err := e.After(room, 0, 10000, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	var lines []logLine
	for _, sm := range msgs {
		var m proto.Message
		if err := json.Unmarshal(sm.JSON, &m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, logLine{m.Seq, m.ID, m.From, m.Text})
	}
	return lines
}
