package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"kaiwa/server/bench"
)

// Markers around the generated part of the benchmarks file: what lies outside is kept.
const (
	benchBegin = "<!-- kaiwa bench: begin -->"
	benchEnd   = "<!-- kaiwa bench: end -->"
)

func benchCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kaiwa bench", flag.ContinueOnError)
	scenarios := fs.String("scenario", "all", "scenarios to run, comma separated: "+strings.Join(bench.Scenarios, ", "))
	conns := fs.Int("conns", 10_000, "idle connections held in the conns scenario")
	soak := fs.Duration("soak", 2*time.Minute, "length of the token-rotation soak")
	soakUsers := fs.Int("soak-users", 1000, "client sessions in the soak")
	nats := fs.Bool("nats", false, "run fanout and durable against a 3-node cluster: three kaiwa serve processes with embedded NATS nodes on loopback")
	peer := fs.String("peer", "", "path of a Centrifugo binary: the peer scenario runs the fan-out against it and Kaiwa in alternating rounds")
	peerRounds := fs.Int("peer-rounds", 3, "alternating rounds of the peer scenario at each rate (1-99): one run of 3 cannot tell latencies apart closer than about ±40 %")
	asJSON := fs.Bool("json", false, "print the results as JSON instead of a table")
	out := fs.String("o", "", "also write the table, with the command, machine and date, into this Markdown file (between its bench markers)")
	// The bench takes no environment twins: a machine that runs a cluster node has KAIWA_NATS
	// set to URLs, which is not what the bench's -nats means.
	fs.SetOutput(stderr)
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, rest[0])
	}
	if *peerRounds < 1 || *peerRounds > 99 {
		return fmt.Errorf("%w: -peer-rounds must be between 1 and 99", errUsage)
	}
	opts := bench.Options{Conns: *conns, Soak: *soak, SoakUsers: *soakUsers, Cluster: *nats, Peer: *peer, PeerRounds: *peerRounds, Progress: stderr}
	if *scenarios != "all" {
		opts.Scenarios = strings.Split(*scenarios, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	started := time.Now()
	rows, err := bench.Run(ctx, opts)
	if err != nil && len(rows) == 0 {
		return err
	}
	if *asJSON {
		if err := bench.WriteJSON(stdout, rows); err != nil {
			return err
		}
	} else {
		bench.WriteTable(stdout, rows)
	}
	if *out != "" {
		if werr := writeBenchFile(*out, "kaiwa bench "+strings.Join(args, " "), started, rows); werr != nil {
			return werr
		}
	}
	return err
}

// writeBenchFile puts the table between the markers of the file, creating it if needed.
func writeBenchFile(path, command string, started time.Time, rows []bench.Row) error {
	var section bytes.Buffer
	fmt.Fprintf(&section, "%s\nMeasured %s with `%s` on %s.\n\n", benchBegin, started.UTC().Format("2006-01-02 15:04 MST"), strings.TrimSpace(command), machine())
	bench.WriteTable(&section, rows)
	section.WriteString(benchEnd)
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	if i, j := strings.Index(text, benchBegin), strings.Index(text, benchEnd); i >= 0 && j > i {
		text = text[:i] + section.String() + text[j+len(benchEnd):]
	} else {
		text = "# Kaiwa benchmarks\n\n" + section.String() + "\n" + text
	}
	return os.WriteFile(path, []byte(text), 0o644)
}

// machine describes where the benchmark ran: cores, memory, Go version.
func machine() string {
	mem := "unknown memory"
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		if _, err := fmt.Sscanf(string(data), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
		}
	}
	return fmt.Sprintf("%d cores, %s, %s %s/%s", runtime.NumCPU(), mem, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
