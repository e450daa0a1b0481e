package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"kaiwa/server/connlimit"
	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// connsScenario holds idle authenticated sockets and reports the server's memory per socket:
// its RSS, and of that its Go heap in use and its goroutine stacks (from /metrics).
// Users are registered first and the server restarted, so password hashing leaves nothing in
// the baseline.
//
// It holds as many sockets as asked, or as many as the server may hold under the open-file
// limit if that is fewer, and says so. The bench raised its own limit to the hard one, and the
// server inherits it; the server keeps descriptors for other uses (connlimit), so it is always
// the side that stops first, and one bench process can hold the client side.
func connsScenario(ctx context.Context, e *env) error {
	n, capped := e.Conns, ""
	if limit := connlimit.FileLimit(); limit > 0 {
		// A few connections below the server's cap, for the bench's own requests.
		if most := connlimit.ForFileLimit(0, limit).Total - connsSpare; n > most {
			capped = fmt.Sprintf(" (%d asked; the open-file limit here is %d, under which a server holds %d connections)",
				e.Conns, limit, most+connsSpare)
			n = most
		}
	}
	srv, err := startServer(ctx, e.Binary)
	if err != nil {
		return err
	}
	defer srv.stop()
	tokens, err := users(ctx, srv.URL, "idle", max(1, n/100))
	if err != nil {
		return err
	}
	if err := srv.restart(ctx); err != nil {
		return err
	}
	time.Sleep(time.Second)
	base, err := srv.rss()
	if err != nil {
		return err
	}
	baseGo, err := scrapeGauges(ctx, srv.URL)
	if err != nil {
		return err
	}
	sources := loopbackSources(srv.URL, n)
	members := make([]*member, n)
	defer func() {
		for _, m := range members {
			if m != nil {
				m.close()
			}
		}
	}()
	start := time.Now()
	var hellos atomic.Int64
	err = parallel(ctx, n, 64, func(i int) error {
		m, err := dialWith(ctx, sources[i%len(sources)], srv.url(i), tokens[i%len(tokens)])
		if err != nil {
			return fmt.Errorf("socket %d: %w", i, err)
		}
		members[i] = m
		got := make(chan struct{}, 1)
		go m.read(ctx, func(line []byte) {
			if frameType(line) == proto.TypeHello {
				got <- struct{}{}
			}
		})
		select {
		case <-got:
			if c := hellos.Add(1); c%2000 == 0 {
				e.progress("conns: %d open", c)
			}
			return nil
		case <-time.After(30 * time.Second):
			return errors.New("no hello within 30 s")
		}
	})
	if err != nil {
		return err
	}
	took := time.Since(start)
	time.Sleep(2 * time.Second)
	held, err := srv.rss()
	if err != nil {
		return err
	}
	heldGo, err := scrapeGauges(ctx, srv.URL)
	if err != nil {
		return err
	}
	per := func(before, after float64) float64 { return (after - before) / float64(n) }
	perConn := per(float64(base), float64(held)) / 1024
	heap := per(baseGo[goHeapInuse], heldGo[goHeapInuse]) / 1024
	stacks := per(baseGo[goStackInuse], heldGo[goStackInuse]) / 1024
	goroutines := per(baseGo[goGoroutines], heldGo[goGoroutines])
	e.add(Row{
		Scenario: "connections held",
		Result: fmt.Sprintf("%d idle authenticated sockets%s from %d loopback addresses: server RSS %.0f MiB → %.0f MiB, "+
			"%.1f KiB per connection (Go heap %.1f KiB, stacks %.1f KiB, %.2f goroutines); connected at %.0f/s",
			n, capped, len(sources), float64(base)/(1<<20), float64(held)/(1<<20), perConn, heap, stacks, goroutines,
			float64(n)/took.Seconds()),
		Target: "≤ 12 KiB per connection at 50 000 (or as many as the open-file limit allows)",
		Figures: map[string]float64{"connections": float64(n), "kib_per_conn": perConn, "heap_kib_per_conn": heap,
			"stack_kib_per_conn": stacks, "goroutines_per_conn": goroutines, "connects_per_s": float64(n) / took.Seconds()},
	})
	return nil
}

// connsSpare is how many connections below the server's cap the conns scenario stays.
const connsSpare = 16

// connsPerSource is how many sockets the conns scenario opens from one loopback address: well
// below the ~28 000 ports of Linux's ephemeral range, which one source address cannot pass.
const connsPerSource = 5000

// loopbackSources returns HTTP clients that dial from 127.0.0.2, 127.0.0.3, … (Linux routes all
// of 127.0.0.0/8 to loopback), enough for n sockets; for a server elsewhere than 127.0.0.1,
// the default client alone.
func loopbackSources(serverURL string, n int) []*http.Client {
	if u, err := url.Parse(serverURL); err != nil || u.Hostname() != "127.0.0.1" {
		return []*http.Client{http.DefaultClient}
	}
	clients := make([]*http.Client, min(250, n/connsPerSource+1))
	for i := range clients {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}}
		clients[i] = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	return clients
}

// The Go runtime's gauges a Kaiwa server serves at /metrics.
const (
	goHeapInuse  = "go_memstats_heap_inuse_bytes"
	goStackInuse = "go_memstats_stack_inuse_bytes"
	goGoroutines = "go_goroutines"
)

// scrapeGauges reads the Go runtime's gauges above from a Kaiwa server's /metrics.
func scrapeGauges(ctx context.Context, base string) (map[string]float64, error) {
	body, err := getMetrics(ctx, base)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || (name != goHeapInuse && name != goStackInuse && name != goGoroutines) {
			continue
		}
		if out[name], err = strconv.ParseFloat(value, 64); err != nil {
			return nil, fmt.Errorf("bench: /metrics: %s: %w", name, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) != 3 {
		return nil, fmt.Errorf("bench: /metrics lacks the Go runtime's gauges (has %d of 3)", len(out))
	}
	return out, nil
}

// roomLoad is rooms full of members: each socket joins one room and records the latency of every
// message it receives.
type roomLoad struct {
	srv        *server
	rooms      []string
	publishers [][]*member // per room
	all        []*member
	lat        histogram
	delivered  atomic.Int64
	acked      atomic.Int64
	ids        atomic.Int64 // send ids: unique across steps, or the server dedupes the sends
	// sendFrame makes the frame that publishes text into room; nil means Kaiwa's send.
	sendFrame func(room, id, text string) any
	// split divides a Kaiwa delivery's latency at its commit: see splitAtCommit.
	split commitSplit
	// cpuPerDelivery is the server's CPU time per delivery in the last step: a figure that
	// holds on a busy machine where latencies do not. loadCPUPerDelivery is the same for the
	// load generator, which shares the server's cores.
	cpuPerDelivery, loadCPUPerDelivery time.Duration
}

func newRoomLoad(ctx context.Context, e *env, srv *server, prefix string, rooms, perRoom int, tokens []string) (*roomLoad, error) {
	l := &roomLoad{srv: srv, rooms: make([]string, rooms), publishers: make([][]*member, rooms), all: make([]*member, rooms*perRoom)}
	api := client.NewAPI(srv.URL, nil)
	for r := range rooms {
		l.rooms[r] = prefix + strconv.Itoa(r)
		if _, err := api.CreateRoom(ctx, tokens[0], l.rooms[r]); err != nil {
			return nil, err
		}
	}
	var joined atomic.Int64
	err := parallel(ctx, len(l.all), 64, func(i int) error {
		m, err := dial(ctx, srv.url(i), tokens[i%len(tokens)])
		if err != nil {
			return err
		}
		l.all[i] = m
		room := l.rooms[i%rooms]
		ok := make(chan struct{}, 1)
		go m.read(ctx, func(line []byte) {
			switch frameType(line) {
			case proto.TypeMessage:
				if t, ok := sentAt(line); ok {
					now := time.Now()
					l.lat.record(now.Sub(t))
					if l.delivered.Add(1)%splitEvery == 0 {
						l.split.record(line, t, now)
					}
				}
			case proto.TypeAck:
				l.acked.Add(1)
			case proto.TypeJoined:
				ok <- struct{}{}
			}
		})
		if err := m.send(ctx, proto.Join{Type: proto.TypeJoin, Room: room}); err != nil {
			return err
		}
		select {
		case <-ok:
		case <-time.After(30 * time.Second):
			return errors.New("no joined within 30 s")
		}
		if c := joined.Add(1); c%2000 == 0 {
			e.progress("%d sockets joined", c)
		}
		return nil
	})
	return l.ready(err)
}

// ready ends the load's setup: with err, it closes what was opened; without, each room's members
// take their turns as its publishers.
func (l *roomLoad) ready(err error) (*roomLoad, error) {
	if err != nil {
		l.close()
		return nil, err
	}
	for i, m := range l.all {
		l.publishers[i%len(l.rooms)] = append(l.publishers[i%len(l.rooms)], m)
	}
	return l, nil
}

func (l *roomLoad) close() {
	for _, m := range l.all {
		if m != nil {
			m.close()
		}
	}
}

// publish sends rate messages per second in total, spread over the rooms and, within a room,
// over enough members to stay under the per-socket send limit, until ctx ends.
func (l *roomLoad) publish(ctx context.Context, rate float64) {
	perRoom := rate / float64(len(l.rooms))
	senders := max(1, int(perRoom/15)+1)
	paced(ctx, rate, func(sent int) bool {
		r := sent % len(l.rooms)
		m := l.publishers[r][(sent/len(l.rooms))%min(senders, len(l.publishers[r]))]
		id, room := strconv.FormatInt(l.ids.Add(1), 36), l.rooms[r]
		go m.sendStamped(ctx, func(text string) any {
			if l.sendFrame != nil {
				return l.sendFrame(room, id, text)
			}
			return proto.Send{Type: proto.TypeSend, Room: room, ID: id, Text: text}
		})
		return true
	})
}

// paced calls f(0), f(1), … at rate calls per second in all, caught up every millisecond, until
// ctx ends or f returns false.
func paced(ctx context.Context, rate float64, f func(i int) bool) {
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for i := 0; ; {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for due := int(time.Since(start).Seconds() * rate); i < due; i++ {
			if !f(i) {
				return
			}
		}
	}
}

// atRandomPhase calls f every period until ctx ends, the first time at a random point of the
// first period: callers started together spread evenly over the period instead of calling at
// the same instants (a ticker made before a random wait would keep their common phase).
func atRandomPhase(ctx context.Context, period time.Duration, f func()) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(rand.N(period)):
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		f()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// step publishes at rate for warm, then measures n windows of the given length, and returns
// the deliveries/s over all windows and their latencies. l.cpuPerDelivery and
// l.loadCPUPerDelivery are set for the measured part.
func (l *roomLoad) step(ctx context.Context, rate float64, warm, window time.Duration, n int) (float64, windows) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go l.publish(ctx, rate)
	time.Sleep(warm)
	before := l.delivered.Load()
	l.split.reset()
	serverCPU, loadCPU := startCPU(l.srv.cpu), startCPU(selfCPU)
	lat := l.lat.windows(window, n)
	got := l.delivered.Load() - before
	l.cpuPerDelivery, l.loadCPUPerDelivery = serverCPU.perEvent(got), loadCPU.perEvent(got)
	cancel()
	time.Sleep(500 * time.Millisecond) // let the last sends drain before the next step
	return float64(got) / (window * time.Duration(n)).Seconds(), lat
}

func latencyFigures(h quantiles) string {
	return fmt.Sprintf("p50 %s, p99 %s, p999 %s", ms(h.quantile(0.5)), ms(h.quantile(0.99)), ms(h.quantile(0.999)))
}

// withLatency adds the p50, p99 and p999 of h, in milliseconds, to a row's figures.
func withLatency(h quantiles, figures map[string]float64) map[string]float64 {
	figures["p50_ms"], figures["p99_ms"], figures["p999_ms"] = msf(h.quantile(.5)), msf(h.quantile(.99)), msf(h.quantile(.999))
	return figures
}

// cpuFigures says the last step's CPU per delivery on both sides and adds it to figures.
func (l *roomLoad) cpuFigures(figures map[string]float64) string {
	addCPU(figures, "server_cpu_us_per_delivery", l.cpuPerDelivery)
	addCPU(figures, "load_cpu_us_per_delivery", l.loadCPUPerDelivery)
	return fmt.Sprintf("CPU per delivery %s server, %s load generator", cpuText(l.cpuPerDelivery), cpuText(l.loadCPUPerDelivery))
}

// fanoutScenario: the loopback floor of the 20×100 shape, then 20 rooms × 100 members at 500
// publishes/s, then 100 rooms × 100 members with the publish rate swept up until the server
// saturates.
// A cluster run has the 20×100 step alone: the floor is the machine's, not the server's.
func fanoutScenario(ctx context.Context, e *env) error {
	if !e.Cluster {
		floorRate, floorLat, floorCPU, err := loopbackFloor(ctx, 20, 100, 500, 2*time.Second, 10*time.Second)
		if err != nil {
			return err
		}
		e.add(Row{
			Scenario: "loopback floor 20×100",
			Result: fmt.Sprintf("plain TCP, no WebSocket, JSON or storage, both ends in one process: %.0f deliveries/s: %s; CPU %s per delivery",
				floorRate, latencyFigures(floorLat), cpuText(floorCPU)),
			Target:  "none: what this machine allows the fan-out shape",
			Figures: withLatency(floorLat, addCPU(map[string]float64{"deliveries_per_s": floorRate}, "cpu_us_per_delivery", floorCPU)),
		})
	}
	srv, err := e.startTarget(ctx)
	if err != nil {
		return err
	}
	defer srv.stop()
	tokens, err := users(ctx, srv.URL, "fan", 100)
	if err != nil {
		return err
	}
	small, err := newRoomLoad(ctx, e, srv, "small", 20, 100, tokens)
	if err != nil {
		return err
	}
	rate, h := small.step(ctx, 500, 2*time.Second, 2*time.Second, 5)
	small.close()
	figures := withLatency(h, map[string]float64{"deliveries_per_s": rate})
	e.add(Row{
		Scenario: e.label("fan-out 20×100"),
		Result:   fmt.Sprintf("500 publishes/s → %.0f deliveries/s: %s (%s); %s", rate, latencyFigures(h), h, small.cpuFigures(figures)),
		Target:   "beat 3.1 ms p50, 21.7 ms p99 at 49 600/s",
		Figures:  figures,
	})
	if e.Cluster {
		return nil
	}
	big, err := newRoomLoad(ctx, e, srv, "big", 100, 100, tokens)
	if err != nil {
		return err
	}
	defer big.close()
	for _, publishes := range []float64{500, 1000, 1500, 2000, 3000} {
		rate, h := big.step(ctx, publishes, 2*time.Second, 1600*time.Millisecond, 5)
		offered := publishes * 100
		figures := withLatency(h, map[string]float64{"offered_per_s": offered, "deliveries_per_s": rate})
		e.add(Row{
			Scenario: fmt.Sprintf("fan-out 100×100 @%.0f/s", publishes),
			Result:   fmt.Sprintf("offered %.0f, delivered %.0f deliveries/s: %s (%s); %s", offered, rate, latencyFigures(h), h, big.cpuFigures(figures)),
			Target:   "p99 ≤ 20 ms at 50 000/s; ≥ 100 000/s with p99 ≤ 50 ms",
			Figures:  figures,
		})
		if rate < 0.9*offered || h.quantile(0.99) > time.Second {
			break // saturated
		}
	}
	return nil
}

// durableScenario: many senders, every ack after the fsync; and beside it one commit per message.
// A cluster run leaves out the one-commit-per-message baseline, which is the single process's.
func durableScenario(ctx context.Context, e *env) error {
	srv, err := e.startTarget(ctx)
	if err != nil {
		return err
	}
	defer srv.stop()
	tokens, err := users(ctx, srv.URL, "dur", 20)
	if err != nil {
		return err
	}
	const senders = 400
	api := client.NewAPI(srv.URL, nil)
	var ackLat histogram
	var acked atomic.Int64
	members := make([]*member, senders)
	defer func() {
		for _, m := range members {
			if m != nil {
				m.close()
			}
		}
	}()
	// 100 rooms of 4 senders: commits spread over many rooms, and a modest fan-out.
	const rooms = 100
	for r := range rooms {
		if _, err := api.CreateRoom(ctx, tokens[0], "dur"+strconv.Itoa(r)); err != nil {
			return err
		}
	}
	err = parallel(ctx, senders, 64, func(i int) error {
		m, err := dial(ctx, srv.url(i), tokens[i%len(tokens)])
		if err != nil {
			return err
		}
		members[i] = m
		ok := make(chan struct{}, 1)
		go m.read(ctx, func(line []byte) {
			switch frameType(line) {
			case proto.TypeAck:
				if ns, err := strconv.ParseInt(jsonField(line, "id"), 36, 64); err == nil {
					ackLat.record(time.Since(time.Unix(0, ns)))
					acked.Add(1)
				}
			case proto.TypeJoined:
				ok <- struct{}{}
			}
		})
		if err := m.send(ctx, proto.Join{Type: proto.TypeJoin, Room: "dur" + strconv.Itoa(i%rooms)}); err != nil {
			return err
		}
		<-ok
		return nil
	})
	if err != nil {
		return err
	}
	// Senders pace themselves at a random phase each, at the target rate, then 20 % above it;
	// each step is measured in windows, as the fan-out steps are.
	step := func(rate float64) (float64, windows) {
		runCtx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		every := time.Duration(float64(time.Second) * senders / rate)
		for i, m := range members {
			wg.Add(1)
			go func() {
				defer wg.Done()
				atRandomPhase(runCtx, every, func() {
					id := strconv.FormatInt(time.Now().UnixNano(), 36)
					m.send(runCtx, proto.Send{Type: proto.TypeSend, Room: "dur" + strconv.Itoa(i%rooms), ID: id, Text: "durable"})
				})
			}()
		}
		time.Sleep(2 * time.Second)
		const window, n = 2 * time.Second, 5
		before := acked.Load()
		lat := ackLat.windows(window, n)
		rate = float64(acked.Load()-before) / (window * n).Seconds()
		cancel()
		wg.Wait()
		time.Sleep(500 * time.Millisecond) // let the last acks arrive before the next step
		return rate, lat
	}
	type result struct {
		offered, acked float64
		lat            windows
	}
	var results []result
	for _, offered := range []float64{5000, 6000} {
		rate, lat := step(offered)
		results = append(results, result{offered, rate, lat})
	}

	var single float64
	if !e.Cluster {
		if single, err = oneCommitPerMessage(ctx); err != nil {
			return err
		}
	}
	for i, r := range results {
		figures := map[string]float64{"acked_per_s": r.acked, "p50_ms": msf(r.lat.quantile(.5)), "p99_ms": msf(r.lat.quantile(.99))}
		if !e.Cluster {
			figures["one_commit_per_message_per_s"] = single
		}
		baseline := ""
		if i == 0 && !e.Cluster {
			baseline = fmt.Sprintf(" (one commit per message: %.0f/s)", single)
		}
		e.add(Row{
			Scenario: e.label(fmt.Sprintf("durable sends @%.0f/s", r.offered)),
			Result: fmt.Sprintf("%d senders in %d rooms: %.0f acked/s, ack p50 %s, p99 %s (%s)%s",
				senders, rooms, r.acked, ms(r.lat.quantile(.5)), ms(r.lat.quantile(.99)), r.lat, baseline),
			Target:  "≥ 5 000 acked/s with p99 ≤ 30 ms",
			Figures: figures,
		})
	}
	return nil
}

// splitEvery is how often a delivery's latency is split at its commit: one in splitEvery,
// as parsing the commit's time costs the load generator more than the rest of a delivery.
const splitEvery = 8

// commitSplit divides the latency of Kaiwa deliveries at the start of the commit that stored
// the message, which is the message's ts (the store stamps a batch's messages with the time
// its transaction began, to the millisecond; the midpoint of that millisecond is taken):
// before is the send until the commit began (the sender's client, the socket, the server's
// read, the committer's queue), after is the commit's start until a member read the message
// (the commit and its fsyncs, the fan-out, the writer, the socket, the member's client).
// Members on this machine read the server's clock, so the two add up to the latency.
type commitSplit struct {
	before, after histogram
}

// record splits the latency of a message frame line sent at sent and read at read.
func (s *commitSplit) record(line []byte, sent, read time.Time) {
	ts, err := time.Parse(time.RFC3339Nano, jsonField(line, "ts"))
	if err != nil {
		return
	}
	began := ts.Add(time.Millisecond / 2)
	s.before.record(began.Sub(sent))
	s.after.record(read.Sub(began))
}

func (s *commitSplit) reset() {
	s.before.reset()
	s.after.reset()
}

// add adds other's samples to s.
func (s *commitSplit) add(other *commitSplit) {
	s.before.add(&other.before)
	s.after.add(&other.after)
}

// String gives the p50 and p99 of each side of the split, or says there was nothing to split.
func (s *commitSplit) String() string {
	if s.before.count() == 0 {
		return "no deliveries split"
	}
	return fmt.Sprintf("send → commit start p50 %s p99 %s, commit start → member read p50 %s p99 %s (%d deliveries, one in %d)",
		ms(s.before.quantile(.5)), ms(s.before.quantile(.99)), ms(s.after.quantile(.5)), ms(s.after.quantile(.99)), s.before.count(), splitEvery)
}

// figures adds the split's p50 and p99, in milliseconds, to a row's figures.
func (s *commitSplit) figures(into map[string]float64) map[string]float64 {
	into["send_to_commit_p50_ms"], into["send_to_commit_p99_ms"] = msf(s.before.quantile(.5)), msf(s.before.quantile(.99))
	into["commit_to_read_p50_ms"], into["commit_to_read_p99_ms"] = msf(s.after.quantile(.5)), msf(s.after.quantile(.99))
	return into
}
