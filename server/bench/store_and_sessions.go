package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"kaiwa/server/store"
	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// oneCommitPerMessage stores messages one transaction (one fsync) each, in process: the
// baseline that group commit is measured against.
func oneCommitPerMessage(ctx context.Context) (float64, error) {
	st, done, err := tempStore()
	if err != nil {
		return 0, err
	}
	defer done()
	const n = 300
	start := time.Now()
	for i := range n {
		if _, _, err := st.Append(store.DefaultRoom, "1", "bench", strconv.Itoa(i), "one commit"); err != nil {
			return 0, err
		}
	}
	return n / time.Since(start).Seconds(), nil
}

// historyScenario reads 50-message pages at random points of a room of 1 000 000 messages,
// in process.
func historyScenario(ctx context.Context, e *env) error {
	st, done, err := tempStore()
	if err != nil {
		return err
	}
	defer done()
	const total, batch = 1_000_000, 20_000
	reqs := make([]store.AppendRequest, batch)
	for written := 0; written < total; written += batch {
		for i := range reqs {
			reqs[i] = store.AppendRequest{Room: store.DefaultRoom, UserID: "1", From: "bench",
				ClientID: strconv.Itoa(written + i), Text: "a message of ordinary length for the history benchmark"}
		}
		if _, err := st.AppendBatch(reqs); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if (written+batch)%200_000 == 0 {
			e.progress("history: %d messages written", written+batch)
		}
	}
	var h histogram
	const reads = 20_000
	for range reads {
		before := uint64(rand.IntN(total)) + 1
		start := time.Now()
		msgs, _, err := st.Page(store.DefaultRoom, &before, nil, 50)
		h.record(time.Since(start))
		if err != nil {
			return err
		}
		if before > 50 && len(msgs) != 50 {
			return fmt.Errorf("history: page before %d has %d messages", before, len(msgs))
		}
	}
	newest := time.Now()
	if _, _, err := st.Page(store.DefaultRoom, nil, nil, 50); err != nil {
		return err
	}
	e.add(Row{
		Scenario: "history",
		Result: fmt.Sprintf("50-message page in a room of 1 000 000: p50 %s, p99 %s (%d random pages; newest page %s)",
			msPrecise(h.quantile(.5)), msPrecise(h.quantile(.99)), reads, msPrecise(time.Since(newest))),
		Target:  "p99 ≤ 2 ms in process",
		Figures: map[string]float64{"p50_ms": msf(h.quantile(.5)), "p99_ms": msf(h.quantile(.99))},
	})
	return nil
}

func msPrecise(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
}

// loginsScenario measures argon2id logins/s during chat traffic, and the chat's p99 before and
// during the login burst.
func loginsScenario(ctx context.Context, e *env) error {
	srv, err := startServer(ctx, e.Binary)
	if err != nil {
		return err
	}
	defer srv.stop()
	tokens, err := users(ctx, srv.URL, "login", 50)
	if err != nil {
		return err
	}
	load, err := newRoomLoad(ctx, e, srv, "chat", 10, 50, tokens)
	if err != nil {
		return err
	}
	defer load.close()
	const publishes = 200.0
	_, calm := load.step(ctx, publishes, 2*time.Second, 1600*time.Millisecond, 5)

	burstCtx, stopBurst := context.WithCancel(ctx)
	var logins, failures atomic.Int64
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; burstCtx.Err() == nil; i += 16 {
				api := client.NewAPI(srv.URL, nil)
				n := strconv.Itoa(i % 50)
				if _, err := api.Login(burstCtx, "login"+n, "bench-password-"+n); err == nil {
					logins.Add(1)
				} else if burstCtx.Err() == nil {
					failures.Add(1)
				}
			}
		}()
	}
	start := time.Now()
	_, busy := load.step(ctx, publishes, time.Second, 1600*time.Millisecond, 5)
	stopBurst()
	wg.Wait()
	rate := float64(logins.Load()) / time.Since(start).Seconds()
	ratio := float64(busy.quantile(.99)) / float64(max(calm.quantile(.99), time.Microsecond))
	e.add(Row{
		Scenario: "logins",
		Result: fmt.Sprintf("%.1f argon2id logins/s from 16 clients (%d refused) during 200 publishes/s to 10×50: chat p99 %s calm, %s during the burst (×%.2f)",
			rate, failures.Load(), ms(calm.quantile(.99)), ms(busy.quantile(.99)), ratio),
		Target:  "chat p99 rises at most 2×",
		Figures: map[string]float64{"logins_per_s": rate, "chat_p99_calm_ms": msf(calm.quantile(.99)), "chat_p99_burst_ms": msf(busy.quantile(.99)), "p99_ratio": ratio},
	})
	return nil
}

// soakScenario: access tokens of 3 s, many client sessions chatting; every message must reach
// every member once, in order, while sockets are replaced about every two seconds.
func soakScenario(ctx context.Context, e *env) error {
	srv, err := startServer(ctx, e.Binary, "-access-ttl", "3s")
	if err != nil {
		return err
	}
	defer srv.stop()
	n := e.SoakUsers
	const rooms = 10
	api := client.NewAPI(srv.URL, nil)
	type soaker struct {
		sess     *client.Session
		room     string
		mu       sync.Mutex
		seqs     []uint64
		replaced int
	}
	soakers := make([]*soaker, n)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var setupToken string
	err = parallel(ctx, n, 8, func(i int) error {
		a := client.NewAPI(srv.URL, nil)
		tb, err := a.Register(ctx, "soak"+strconv.Itoa(i), "bench-password-soak")
		if err != nil {
			return err
		}
		if i == 0 {
			setupToken = tb.AccessToken
		}
		s := &soaker{sess: client.NewSession(a, client.Options{Token: &tb}), room: "soak" + strconv.Itoa(i%rooms)}
		soakers[i] = s
		if (i+1)%200 == 0 {
			e.progress("soak: %d of %d signed in", i+1, n)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for r := range rooms {
		// The first user's token may be near its end after a long sign-up: refresh first.
		if _, err := api.CreateRoom(ctx, setupToken, "soak"+strconv.Itoa(r)); err != nil && !client.IsCode(err, proto.CodeRoomExists) {
			tb, rerr := client.NewAPI(srv.URL, nil).Login(ctx, "soak0", "bench-password-soak")
			if rerr != nil {
				return err
			}
			setupToken = tb.AccessToken
			if _, err := api.CreateRoom(ctx, setupToken, "soak"+strconv.Itoa(r)); err != nil {
				return err
			}
		}
	}
	var loginRequired atomic.Int64
	for _, s := range soakers {
		go func() {
			if s.sess.Run(runCtx) != nil {
				loginRequired.Add(1)
			}
		}()
		go func() {
			for {
				select {
				case <-runCtx.Done():
					return
				case ev := <-s.sess.Events():
					s.mu.Lock()
					switch ev.Kind {
					case client.EventMessage:
						s.seqs = append(s.seqs, ev.Message.Seq)
					case client.EventReplaced:
						s.replaced++
					}
					s.mu.Unlock()
				}
			}
		}()
		s.sess.JoinAfter(s.room, 0)
	}
	e.progress("soak: %d sessions chatting for %v", n, e.Soak)
	var sent atomic.Int64
	sendCtx, stopSending := context.WithTimeout(runCtx, e.Soak)
	var wg sync.WaitGroup
	for _, s := range soakers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			atRandomPhase(sendCtx, 10*time.Second, func() {
				s.sess.Send(s.room, "soak "+strconv.FormatInt(sent.Add(1), 10))
			})
		}()
	}
	wg.Wait()
	stopSending()
	// Wait for every outbox to drain and every member to catch up with its room.
	deadline := time.Now().Add(60 * time.Second)
	var lost, dup, behind int
	for {
		rl, err := client.NewAPI(srv.URL, nil).Login(ctx, "soak0", "bench-password-soak")
		if err != nil {
			return err
		}
		list, err := api.Rooms(ctx, rl.AccessToken)
		if err != nil {
			return err
		}
		last := map[string]uint64{}
		var stored uint64
		for _, r := range list {
			last[r.Name] = r.LastSeq
			stored += r.LastSeq
		}
		lost, dup, behind = 0, 0, 0
		for _, s := range soakers {
			s.mu.Lock()
			seen := map[uint64]bool{}
			for _, q := range s.seqs {
				if seen[q] {
					dup++
				}
				seen[q] = true
			}
			for q := uint64(1); q <= last[s.room]; q++ {
				if !seen[q] {
					lost++
				}
			}
			if !slices.IsSorted(s.seqs) {
				dup++ // out of order counts as a fault
			}
			s.mu.Unlock()
		}
		for _, s := range soakers {
			if len(s.sess.Outbox()) > 0 {
				behind++
			}
		}
		if (lost == 0 && behind == 0 && stored >= uint64(sent.Load())) || time.Now().After(deadline) {
			replaced := 0
			for _, s := range soakers {
				replaced += s.replaced
			}
			e.add(Row{
				Scenario: "token-rotation soak",
				Result: fmt.Sprintf("%d sessions, access TTL 3 s, %v: %d sent, %d stored; lost %d, duplicated %d, unsent %d, socket replacements %d, signed out %d",
					n, e.Soak, sent.Load(), stored, lost, dup, behind, replaced, loginRequired.Load()),
				Target:  "lost 0, duplicated 0",
				Figures: map[string]float64{"sessions": float64(n), "sent": float64(sent.Load()), "lost": float64(lost), "duplicated": float64(dup), "replacements": float64(replaced)},
			})
			return nil
		}
		time.Sleep(time.Second)
	}
}

// tempStore opens a store in a new temporary directory; done closes it and removes the directory.
func tempStore() (st *store.Store, done func(), err error) {
	dir, err := os.MkdirTemp("", "kaiwa-bench-")
	if err != nil {
		return nil, nil, err
	}
	st, err = store.Open(filepath.Join(dir, "kaiwa.db"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return st, func() { st.Close(); os.RemoveAll(dir) }, nil
}
