package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// churnScenario: a room of members that read, while other users join it and drop their socket
// at once, over and over (a flaky network, a crowd of tabs). Each join and each drop changes
// who is online; the row says whether members were closed, how many presence frames each got
// a second, and what the churn cost the server in CPU.
func churnScenario(ctx context.Context, e *env) error {
	srv, err := startServer(ctx, e.Binary)
	if err != nil {
		return err
	}
	defer srv.stop()
	const (
		stayUsers, perUser = 50, 4 // 200 members that stay and read
		churnUsers         = 50
		joinsPerSecond     = 100
		window             = 10 * time.Second
	)
	tokens, err := users(ctx, srv.URL, "churn", stayUsers+churnUsers)
	if err != nil {
		return err
	}
	if _, err := client.NewAPI(srv.URL, nil).CreateRoom(ctx, tokens[0], "churn"); err != nil {
		return err
	}
	members := make([]*member, stayUsers*perUser)
	defer func() {
		for _, m := range members {
			if m != nil {
				m.close()
			}
		}
	}()
	var presence, closed atomic.Int64
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	err = parallel(ctx, len(members), 64, func(i int) error {
		m, err := dial(ctx, srv.URL, tokens[i%stayUsers])
		if err != nil {
			return err
		}
		members[i] = m
		joined := make(chan struct{}, 1)
		go func() {
			m.read(runCtx, func(line []byte) {
				switch frameType(line) {
				case proto.TypePresence:
					presence.Add(1)
				case proto.TypeJoined:
					joined <- struct{}{}
				}
			})
			if runCtx.Err() == nil {
				closed.Add(1)
			}
		}()
		if err := m.send(ctx, proto.Join{Type: proto.TypeJoin, Room: "churn"}); err != nil {
			return err
		}
		select {
		case <-joined:
			return nil
		case <-time.After(30 * time.Second):
			return errors.New("no joined within 30 s")
		}
	})
	if err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // the joins' presence settles
	presence.Store(0)

	// Churners: each joins, waits for its joined frame and drops the socket, at a random phase,
	// joinsPerSecond in all.
	var joins, failed atomic.Int64
	var wg sync.WaitGroup
	churnCtx, endChurn := context.WithTimeout(runCtx, window)
	defer endChurn()
	cpu := startCPU(srv.cpu)
	start := time.Now()
	for i := range churnUsers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			atRandomPhase(churnCtx, time.Second*churnUsers/joinsPerSecond, func() {
				if churnOnce(churnCtx, srv.URL, tokens[stayUsers+i]) != nil {
					if churnCtx.Err() == nil { // not cut short by the window's end
						failed.Add(1)
					}
					return
				}
				joins.Add(1)
			})
		}()
	}
	wg.Wait()
	took := time.Since(start)
	perJoin := cpu.perEvent(joins.Load())
	frames := presence.Load()
	perMember := float64(frames) / float64(len(members)) / took.Seconds()
	figures := map[string]float64{
		"members": float64(len(members)), "joins_per_s": float64(joins.Load()) / took.Seconds(),
		"members_closed": float64(closed.Load()), "presence_per_member_per_s": perMember,
		"presence_frames_per_s": float64(frames) / took.Seconds(), "failed_joins": float64(failed.Load()),
	}
	addCPU(figures, "server_cpu_us_per_join", perJoin)
	e.add(Row{
		Scenario: "join-and-drop churn",
		Result: fmt.Sprintf("%d members reading, %d users joining and dropping at %.0f/s for %v (%d failed): %d members closed; %.2f presence frames/s per member (%.0f/s in all); server CPU %s per join",
			len(members), churnUsers, float64(joins.Load())/took.Seconds(), window, failed.Load(), closed.Load(), perMember, float64(frames)/took.Seconds(), cpuText(perJoin)),
		Target:  "no member closed; at most 1 presence frame per member per second",
		Figures: figures,
	})
	return nil
}

// churnOnce opens a socket, joins the room and drops the socket as soon as the join is
// answered.
func churnOnce(ctx context.Context, base, token string) error {
	m, err := dial(ctx, base, token)
	if err != nil {
		return err
	}
	defer m.close()
	joined := make(chan struct{}, 1)
	go m.read(ctx, func(line []byte) {
		if frameType(line) == proto.TypeJoined {
			select {
			case joined <- struct{}{}:
			default:
			}
		}
	})
	if err := m.send(ctx, proto.Join{Type: proto.TypeJoin, Room: "churn"}); err != nil {
		return err
	}
	select {
	case <-joined:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Second):
		return errors.New("no joined within 10 s")
	}
}
