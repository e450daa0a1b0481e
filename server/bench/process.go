package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// server is a Kaiwa server under test, running as its own process on a temporary database.
type server struct {
	bin  string
	args []string
	cmd  *exec.Cmd
	URL  string
	dir  string
	done chan error
	wait time.Duration // for the health check at start; 0: 15 s
	// health is the path answering 200 once the process serves; empty: Kaiwa's /healthz.
	// A peer (another chat server) names its own, and logs to peer.log instead of server.log.
	health string
	// nodes, when set, are the processes of a cluster, and this server stands for them all
	// (startCluster): it runs no process of its own.
	nodes []*server
}

// startServer runs `bin serve` on a free loopback port with a new database and the given extra
// flags, and waits until it answers /healthz.
func startServer(ctx context.Context, bin string, flags ...string) (*server, error) {
	return startServerWait(ctx, bin, 0, flags...)
}

// startServerWait is startServer waiting up to wait for /healthz (0: 15 s).
func startServerWait(ctx context.Context, bin string, wait time.Duration, flags ...string) (*server, error) {
	dir, err := os.MkdirTemp("", "kaiwa-bench-")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	args := append([]string{"serve", "-addr", addr, "-db", filepath.Join(dir, "kaiwa.db"),
		"-ip-conn-limit", "0", "-user-conn-limit", "0", "-rate-limits", "off", "-log-format", "json", "-secure-cookies", "never"}, flags...)
	s := &server{bin: bin, args: args, URL: "http://" + addr, dir: dir, wait: wait}
	if err := s.start(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// start runs the server process and waits for its health check.
func (s *server) start(ctx context.Context) error {
	what, health := "server", cmp.Or(s.health, "/healthz")
	if s.health != "" {
		what = "peer"
	}
	logPath := filepath.Join(s.dir, what+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("bench: start %s: %w", what, err)
	}
	s.cmd, s.done = cmd, make(chan error, 1)
	go func() { s.done <- cmd.Wait(); logFile.Close() }()
	wait := cmp.Or(s.wait, 15*time.Second)
	deadline := time.Now().Add(wait)
	for {
		resp, err := http.Get(s.URL + health)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-s.done:
			return fmt.Errorf("bench: %s exited at start: %v (log: %s)", what, err, logPath)
		case <-ctx.Done():
			s.halt()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.halt()
			return fmt.Errorf("bench: %s did not answer %s within %v (log: %s)", what, health, wait, logPath)
		}
	}
}

// restart stops the server and starts it again on the same database.
func (s *server) restart(ctx context.Context) error {
	s.halt()
	return s.start(ctx)
}

// rss is the server's resident memory in bytes, from /proc (Linux).
func (s *server) rss() (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("bench: read server memory: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("bench: no VmRSS in /proc status")
}

// halt ends the server process with SIGTERM, or SIGKILL after 10 s.
func (s *server) halt() {
	if len(s.nodes) > 0 {
		for _, n := range s.nodes {
			n.halt()
		}
		return
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// stop ends the server and removes its files.
func (s *server) stop() {
	if len(s.nodes) > 0 {
		for _, n := range s.nodes {
			n.stop()
		}
		return
	}
	s.halt()
	os.RemoveAll(s.dir)
}

// cpu is the CPU time the server process has used so far (user + system), from /proc (Linux),
// and whether it could be read; for a cluster, its processes' together.
func (s *server) cpu() (time.Duration, bool) {
	if s != nil && len(s.nodes) > 0 {
		var sum time.Duration
		for _, n := range s.nodes {
			d, ok := n.cpu()
			if !ok {
				return 0, false
			}
			sum += d
		}
		return sum, true
	}
	if s == nil || s.cmd == nil {
		return 0, false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0, false
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	text := string(data)
	if i := strings.LastIndexByte(text, ')'); i >= 0 {
		text = text[i+2:]
	}
	fields := strings.Fields(text)
	if len(fields) < 13 {
		return 0, false
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks, true
}

// cpuMeter measures the CPU time one side spends between its creation and perEvent; read is
// the side's CPU clock (server.cpu or selfCPU).
type cpuMeter struct {
	read   func() (time.Duration, bool)
	before time.Duration
	ok     bool
}

func startCPU(read func() (time.Duration, bool)) cpuMeter {
	before, ok := read()
	return cpuMeter{read: read, before: before, ok: ok}
}

// perEvent is the CPU time spent since the start divided by n, or notMeasured when the clock
// cannot be read on this system.
func (m cpuMeter) perEvent(n int64) time.Duration {
	now, ok := m.read()
	if !m.ok || !ok {
		return notMeasured
	}
	return (now - m.before) / time.Duration(max(n, 1))
}

// notMeasured stands for a CPU figure this system cannot give (no /proc or getrusage).
const notMeasured time.Duration = -1

// cpuText says a CPU time per event in microseconds, or that it was not measured.
func cpuText(d time.Duration) string {
	if d == notMeasured {
		return "not measured"
	}
	return fmt.Sprintf("%.1f µs", us(d))
}

// addCPU adds a CPU figure under key, in microseconds, when it was measured.
func addCPU(figures map[string]float64, key string, d time.Duration) map[string]float64 {
	if d != notMeasured {
		figures[key] = us(d)
	}
	return figures
}
