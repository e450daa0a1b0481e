package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Options select and size the scenarios. Zero values mean the defaults.
type Options struct {
	Binary    string   // the kaiwa executable to run as the server under test; default this one
	Scenarios []string // default: all, in order
	Conns     int      // connections held; default 10 000
	Soak      time.Duration
	SoakUsers int
	// Cluster runs the fan-out and durable-send scenarios against a 3-node cluster of `kaiwa
	// serve` processes with embedded NATS nodes (kaiwa bench -nats) instead of one process.
	Cluster bool
	// Peer is the path of a Centrifugo binary the peer scenario compares Kaiwa with; without
	// it that scenario is skipped.
	Peer string
	// PeerRounds is how many alternating rounds the peer scenario runs at each rate; 0: 3.
	// One round of each system takes about 25 s.
	PeerRounds int
	// Progress receives a line now and then while scenarios run; nil means none.
	Progress io.Writer
}

// Scenarios lists every scenario in the order they run.
var Scenarios = []string{"conns", "fanout", "churn", "durable", "history", "rooms", "logins", "soak", "webapp", "stages", "peer"}

// Row is one line of the results table.
type Row struct {
	Scenario string             `json:"scenario"`
	Result   string             `json:"result"`
	Target   string             `json:"target"`
	Figures  map[string]float64 `json:"figures"`
}

type env struct {
	Options
	rows []Row
}

func (e *env) progress(format string, args ...any) {
	if e.Progress != nil {
		fmt.Fprintf(e.Progress, "bench: "+format+"\n", args...)
	}
}

func (e *env) add(r Row) {
	e.rows = append(e.rows, r)
	e.progress("%s: %s", r.Scenario, r.Result)
}

// Run runs the chosen scenarios and returns their rows. A scenario that fails adds a row
// saying so and the others still run.
func Run(ctx context.Context, opts Options) ([]Row, error) {
	if opts.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		opts.Binary = exe
	}
	have := Scenarios
	if opts.Cluster {
		have = clusterScenarios
	}
	if len(opts.Scenarios) == 0 {
		opts.Scenarios = have
	}
	for _, s := range opts.Scenarios {
		if !slices.Contains(have, s) {
			return nil, fmt.Errorf("bench: unknown scenario %q (have %s)", s, strings.Join(have, ", "))
		}
	}
	if opts.Conns <= 0 {
		opts.Conns = 10_000
	}
	if opts.Soak <= 0 {
		opts.Soak = 2 * time.Minute
	}
	if opts.SoakUsers <= 0 {
		opts.SoakUsers = 1000
	}
	if _, err := raiseFileLimit(); err != nil {
		return nil, fmt.Errorf("bench: raise open-file limit: %w", err)
	}
	e := &env{Options: opts}
	run := map[string]func(context.Context, *env) error{
		"conns": connsScenario, "fanout": fanoutScenario, "churn": churnScenario, "durable": durableScenario,
		"history": historyScenario, "rooms": roomsScenario, "logins": loginsScenario, "soak": soakScenario, "webapp": webappScenario,
		"stages": stagesScenario, "peer": peerScenario,
	}
	for _, name := range opts.Scenarios {
		start := time.Now()
		e.progress("%s: starting", name)
		if err := run[name](ctx, e); err != nil {
			if ctx.Err() != nil {
				return e.rows, ctx.Err()
			}
			e.add(Row{Scenario: name, Result: "FAILED: " + err.Error()})
		}
		e.progress("%s: done in %v", name, time.Since(start).Round(time.Second))
		runtime.GC()
	}
	return e.rows, nil
}

// WriteTable prints rows as a Markdown table.
func WriteTable(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "| scenario | result | target |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s |\n", r.Scenario, r.Result, r.Target)
	}
}

// WriteJSON prints rows as JSON.
func WriteJSON(w io.Writer, rows []Row) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rows)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
