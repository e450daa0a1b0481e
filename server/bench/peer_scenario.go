package bench

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// defaultPeerRounds is how many alternating rounds the peer scenario runs unless
// Options.PeerRounds says otherwise: one system's step, then the other's, so that a burst of
// work from elsewhere on a shared machine falls on both.
const defaultPeerRounds = 3

// peerScenario runs the 20 rooms × 100 members fan-out against Kaiwa and against the peer
// (Options.Peer) side by side, both up at once with their sockets connected, in alternating
// rounds at 500 publishes/s (~50 000 deliveries/s) and twice that. Only the ratios mean
// something on a shared machine: each row gives both systems' latencies and their ratio.
func peerScenario(ctx context.Context, e *env) error {
	if e.Peer == "" {
		e.progress("peer: skipped (no -peer binary given)")
		return nil
	}
	srv, err := startServer(ctx, e.Binary)
	if err != nil {
		return err
	}
	defer srv.stop()
	tokens, err := users(ctx, srv.URL, "side", 100)
	if err != nil {
		return err
	}
	kaiwa, err := newRoomLoad(ctx, e, srv, "side", 20, 100, tokens)
	if err != nil {
		return err
	}
	defer kaiwa.close()
	// A Kaiwa binary as the peer (another build, for an A/B of a change) is driven as Kaiwa is.
	peerName, peerSrv, peer := "Centrifugo", (*server)(nil), (*roomLoad)(nil)
	if out, err := exec.CommandContext(ctx, e.Peer, "version").Output(); err == nil && bytes.HasPrefix(out, []byte("kaiwa ")) {
		peerName = "peer Kaiwa"
		if peerSrv, err = startServer(ctx, e.Peer); err != nil {
			return err
		}
		defer peerSrv.stop()
		peerTokens, err := users(ctx, peerSrv.URL, "side", 100)
		if err != nil {
			return err
		}
		peer, err = newRoomLoad(ctx, e, peerSrv, "side", 20, 100, peerTokens)
		if err != nil {
			return err
		}
	} else {
		if peerSrv, err = startPeer(ctx, e.Peer); err != nil {
			return err
		}
		defer peerSrv.stop()
		if peer, err = newPeerLoad(ctx, e, peerSrv, 20, 100); err != nil {
			return err
		}
	}
	defer peer.close()

	type side struct {
		name  string
		load  *roomLoad
		lat   windows
		rates []float64
		p50s  []time.Duration
		p99s  []time.Duration
		cpus  []time.Duration
	}
	peerRounds := cmp.Or(e.PeerRounds, defaultPeerRounds)
	for _, publishes := range []float64{500, 1000} {
		sides := []*side{{name: "Kaiwa", load: kaiwa}, {name: peerName, load: peer}}
		stages, split := stageCounts{}, &commitSplit{}
		for round := range peerRounds {
			order := sides
			if round%2 == 1 {
				order = []*side{sides[1], sides[0]}
			}
			for _, s := range order {
				var before stageCounts
				if s.load == kaiwa {
					if before, err = scrapeStages(ctx, srv.URL); err != nil {
						return err
					}
				}
				rate, lat := s.load.step(ctx, publishes, 2*time.Second, 2*time.Second, 5)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if s.load == kaiwa {
					after, err := scrapeStages(ctx, srv.URL)
					if err != nil {
						return err
					}
					stages.add(after.since(before))
					split.add(&kaiwa.split)
				}
				s.lat = append(s.lat, lat...)
				s.rates = append(s.rates, rate)
				s.p50s = append(s.p50s, lat.quantile(.5))
				s.p99s = append(s.p99s, lat.quantile(.99))
				s.cpus = append(s.cpus, s.load.cpuPerDelivery)
				e.progress("peer: %.0f publishes/s round %d %s: %.0f deliveries/s, %s; CPU per delivery %s server, %s load generator",
					publishes, round+1, s.name, rate, latencyFigures(lat), cpuText(s.load.cpuPerDelivery), cpuText(s.load.loadCPUPerDelivery))
			}
		}
		k, c := sides[0], sides[1]
		ratio := func(a, b time.Duration) float64 { return float64(a) / float64(max(b, time.Microsecond)) }
		var rounds []string
		var p50Ratios, p99Ratios []float64
		for i := range peerRounds {
			p50Ratios = append(p50Ratios, ratio(k.p50s[i], c.p50s[i]))
			p99Ratios = append(p99Ratios, ratio(k.p99s[i], c.p99s[i]))
			rounds = append(rounds, fmt.Sprintf("p50 %.2f× p99 %.2f×", p50Ratios[i], p99Ratios[i]))
		}
		figures := map[string]float64{
			"kaiwa_p50_ms": msf(k.lat.quantile(.5)), "kaiwa_p99_ms": msf(k.lat.quantile(.99)),
			"peer_p50_ms": msf(c.lat.quantile(.5)), "peer_p99_ms": msf(c.lat.quantile(.99)),
			"p50_ratio": ratio(k.lat.quantile(.5), c.lat.quantile(.5)), "p99_ratio": ratio(k.lat.quantile(.99), c.lat.quantile(.99)),
			"p50_ratio_rounds_median": median(p50Ratios), "p99_ratio_rounds_median": median(p99Ratios),
			"kaiwa_deliveries_per_s": mean(k.rates), "peer_deliveries_per_s": mean(c.rates),
		}
		addCPU(figures, "kaiwa_cpu_us_per_delivery", meanDuration(k.cpus))
		addCPU(figures, "peer_cpu_us_per_delivery", meanDuration(c.cpus))
		e.add(Row{
			Scenario: fmt.Sprintf("side by side 20×100 @%.0f/s", publishes),
			Result: fmt.Sprintf("Kaiwa %.0f deliveries/s p50 %s p99 %s (server CPU %s/delivery); %s %.0f deliveries/s p50 %s p99 %s (%s/delivery): Kaiwa/%s p50 %.2f×, p99 %.2f× (%d alternating rounds, median of %d windows; per round %s; the rounds' median p50 %.2f×, p99 %.2f×)",
				mean(k.rates), ms(k.lat.quantile(.5)), ms(k.lat.quantile(.99)), cpuText(meanDuration(k.cpus)),
				peerName, mean(c.rates), ms(c.lat.quantile(.5)), ms(c.lat.quantile(.99)), cpuText(meanDuration(c.cpus)),
				peerName, figures["p50_ratio"], figures["p99_ratio"], peerRounds, len(k.lat), strings.Join(rounds, "; "),
				figures["p50_ratio_rounds_median"], figures["p99_ratio_rounds_median"]),
			Target:  "ratios ≤ 1× on p50 and p99, every Kaiwa message on disk before delivery",
			Figures: figures,
		})
		e.add(stagesRow(publishes, stages, split))
	}
	return nil
}

// stagesRow says where a Kaiwa message waited at a publish rate, stage by stage, and how the
// members' latency splits at the commit.
func stagesRow(publishes float64, stages stageCounts, split *commitSplit) Row {
	return Row{
		Scenario: fmt.Sprintf("where a message waits 20×100 @%.0f/s", publishes),
		Result: "Kaiwa, from the server's kaiwa_fanout_stage_seconds: " + stages.String() +
			"; as members saw it, split at the commit's start: " + split.String(),
		Target:  "none: the breakdown of the fan-out latency",
		Figures: split.figures(stages.figures(map[string]float64{})),
	}
}

// stagesScenario runs the 20 rooms × 100 members fan-out against Kaiwa alone at 500 and 1000
// publishes/s and says where a message waits, stage by stage, beside the latency the members
// see.
func stagesScenario(ctx context.Context, e *env) error {
	srv, err := startServer(ctx, e.Binary)
	if err != nil {
		return err
	}
	defer srv.stop()
	tokens, err := users(ctx, srv.URL, "stage", 100)
	if err != nil {
		return err
	}
	load, err := newRoomLoad(ctx, e, srv, "stage", 20, 100, tokens)
	if err != nil {
		return err
	}
	defer load.close()
	for _, publishes := range []float64{500, 1000} {
		before, err := scrapeStages(ctx, srv.URL)
		if err != nil {
			return err
		}
		rate, lat := load.step(ctx, publishes, 2*time.Second, 2*time.Second, 5)
		after, err := scrapeStages(ctx, srv.URL)
		if err != nil {
			return err
		}
		row := stagesRow(publishes, after.since(before), &load.split)
		row.Result += fmt.Sprintf("; members saw %.0f deliveries/s, %s", rate, latencyFigures(lat))
		row.Figures = withLatency(lat, row.Figures)
		row.Figures["deliveries_per_s"] = rate
		e.add(row)
	}
	return nil
}

func mean(v []float64) float64 {
	var sum float64
	for _, x := range v {
		sum += x
	}
	return sum / float64(max(len(v), 1))
}

// meanDuration is the mean of CPU figures, or notMeasured if any is.
func meanDuration(v []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range v {
		if d == notMeasured {
			return notMeasured
		}
		sum += d
	}
	return sum / time.Duration(max(len(v), 1))
}
