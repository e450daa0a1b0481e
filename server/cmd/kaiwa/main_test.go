package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"kaiwa/server"
	"kaiwa/server/auth"
	"kaiwa/server/servertest"
	"kaiwa/server/store"
	"kaiwa/shared/client"
)

// execMainEnv, when set, makes the test binary act as the kaiwa command: tests start it as a
// second process to see what a real process does (exit status, file locks, signals).
const execMainEnv = "GO_TEST_EXEC_KAIWA"

func TestMain(m *testing.M) {
	if os.Getenv(execMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// kaiwaCommand returns the kaiwa command as a separate process, with no KAIWA_ variable from the
// test's environment and the given ones added.
func kaiwaCommand(ctx context.Context, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KAIWA_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// The race detector otherwise sleeps a second at exit, which is no part of kaiwa's timing.
	cmd.Env = append(append(cmd.Env, execMainEnv+"=1", "GORACE=atexit_sleep_ms=0"), env...)
	cmd.WaitDelay = time.Second
	return cmd
}

// runKaiwa runs the command in-process and returns its exit status and output.
func runKaiwa(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, strings.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		ttl        time.Duration
		admin      bool
		db         string
		positional []string
		usageErr   bool
	}{
		{name: "defaults", ttl: 10 * time.Minute, db: "data/kaiwa.db"},
		{name: "env twin applies", env: map[string]string{"KAIWA_ACCESS_TTL": "3s", "KAIWA_DB": "/tmp/x.db"}, ttl: 3 * time.Second, db: "/tmp/x.db"},
		{name: "flag wins over its twin", env: map[string]string{"KAIWA_ACCESS_TTL": "3s"}, args: []string{"-access-ttl", "5s"}, ttl: 5 * time.Second, db: "data/kaiwa.db"},
		{name: "flag after the name", args: []string{"alice", "-admin"}, ttl: 10 * time.Minute, admin: true, db: "data/kaiwa.db", positional: []string{"alice"}},
		{name: "flag before the name", args: []string{"-admin", "alice"}, ttl: 10 * time.Minute, admin: true, db: "data/kaiwa.db", positional: []string{"alice"}},
		{name: "flags on both sides", args: []string{"-db", "a.db", "alice", "-admin", "-access-ttl=1m"}, ttl: time.Minute, admin: true, db: "a.db", positional: []string{"alice"}},
		{name: "two names", args: []string{"alice", "-admin", "bob"}, ttl: 10 * time.Minute, admin: true, db: "data/kaiwa.db", positional: []string{"alice", "bob"}},
		{name: "bool twin", env: map[string]string{"KAIWA_ADMIN": "true"}, args: []string{"alice"}, ttl: 10 * time.Minute, admin: true, db: "data/kaiwa.db", positional: []string{"alice"}},
		{name: "bad flag value", args: []string{"-access-ttl", "banana"}, usageErr: true},
		{name: "bad env value", env: map[string]string{"KAIWA_ACCESS_TTL": "banana"}, usageErr: true},
		{name: "unknown flag", args: []string{"alice", "-nope"}, usageErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			ttl := fs.Duration("access-ttl", 10*time.Minute, "")
			admin := fs.Bool("admin", false, "")
			db := fs.String("db", "data/kaiwa.db", "")
			positional, err := parseFlags(fs, tc.args, io.Discard)
			if tc.usageErr {
				if !errors.Is(err, errUsage) {
					t.Errorf("parseFlags: %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *ttl != tc.ttl || *admin != tc.admin || *db != tc.db || !slices.Equal(positional, tc.positional) {
				t.Errorf("got ttl %v, admin %t, db %q, positional %q; want %v, %t, %q, %q", *ttl, *admin, *db, positional, tc.ttl, tc.admin, tc.db, tc.positional)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "kaiwa.db")
	tests := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"unknown command", nil, []string{"frobnicate"}},
		{"bad duration", nil, []string{"serve", "-db", db, "-access-ttl", "banana"}},
		{"zero duration", nil, []string{"serve", "-db", db, "-access-ttl", "0s"}},
		{"sub-second refresh ttl", nil, []string{"-db", db, "-refresh-ttl", "500ms"}},
		{"bad registration", nil, []string{"serve", "-db", db, "-registration", "maybe"}},
		{"bad secure-cookies", nil, []string{"serve", "-db", db, "-secure-cookies", "sometimes"}},
		{"bad log format", nil, []string{"serve", "-db", db, "-log-format", "xml"}},
		{"bad rate-limits", nil, []string{"serve", "-db", db, "-rate-limits", "maybe"}},
		{"bad rate-limits env twin", map[string]string{"KAIWA_RATE_LIMITS": "false"}, []string{"serve", "-db", db}},
		{"bad check", nil, []string{"serve", "-db", db, "-check", "sometimes"}},
		{"negative conn limit", nil, []string{"serve", "-db", db, "-ip-conn-limit", "-1"}},
		{"non-numeric conn limit", nil, []string{"serve", "-db", db, "-ip-conn-limit", "many"}},
		{"negative user conn limit", nil, []string{"serve", "-db", db, "-user-conn-limit", "-1"}},
		{"negative user conn limit from env", map[string]string{"KAIWA_USER_CONN_LIMIT": "-1"}, []string{"serve", "-db", db}},
		{"unknown flag", nil, []string{"serve", "-db", db, "-nope"}},
		{"stray argument", nil, []string{"serve", "-db", db, "extra"}},
		{"bad env twin", map[string]string{"KAIWA_ACCESS_TTL": "banana"}, []string{"serve", "-db", db}},
		{"bad env twin, good flag", map[string]string{"KAIWA_REGISTRATION": "maybe"}, []string{"serve", "-db", db, "-registration", "closed", "-access-ttl", "0s"}},
		{"user without subcommand", nil, []string{"user"}},
		{"unknown user subcommand", nil, []string{"user", "frob", "alice"}},
		{"user add without a name", nil, []string{"user", "add", "-db", db}},
		{"user add with two names", nil, []string{"user", "add", "-db", db, "alice", "bob"}},
		{"user add with a bad flag", nil, []string{"user", "add", "-db", db, "alice", "-admin=perhaps"}},
		{"passwd takes no -admin", nil, []string{"user", "passwd", "-db", db, "alice", "-admin"}},
		{"backup without -o", nil, []string{"backup", "-user", "root"}},
		{"key without rotate", nil, []string{"key", "-db", db}},
		{"key rotate with an argument", nil, []string{"key", "rotate", "-db", db, "now"}},
		{"bench with no peer rounds", nil, []string{"bench", "-scenario", "peer", "-peer-rounds", "0"}},
		{"bench with too many peer rounds", nil, []string{"bench", "-scenario", "peer", "-peer-rounds", "100"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, _, stderr := runKaiwa(t, "correct horse\n", tc.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", code, stderr)
			}
			if !strings.Contains(stderr, "Usage:") {
				t.Errorf("stderr %q, want the usage", stderr)
			}
		})
	}
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a usage error created the database: %v", err)
	}
	t.Run("help", func(t *testing.T) {
		for _, args := range [][]string{{"serve", "-h"}, {"-help"}, {"user", "add", "-h"}} {
			code, _, stderr := runKaiwa(t, "", args...)
			if code != 0 || !strings.Contains(stderr, "-db") || strings.Contains(stderr, "kaiwa: ") {
				t.Errorf("%q: exit %d, stderr %q; want 0 and the flags without an error", args, code, stderr)
			}
		}
	})
	t.Run("version", func(t *testing.T) {
		if code, stdout, _ := runKaiwa(t, "", "version"); code != 0 || stdout != "kaiwa "+version+"\n" {
			t.Errorf("version: exit %d, %q", code, stdout)
		}
	})
}

func TestUserCommands(t *testing.T) {
	db := filepath.Join(t.TempDir(), "sub", "kaiwa.db")
	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		stdin  string
		code   int
		output string // in stdout when code is 0, else in stderr
	}{
		{"add, flag after the name", nil, []string{"user", "add", "-db", db, "Root", "-admin"}, "correct horse\n", 0, "created user root"},
		{"add, flag before the name", nil, []string{"user", "add", "-admin", "-db", db, "ops"}, "correct horse\n", 0, "admin true"},
		{"add with the db from its env twin", map[string]string{"KAIWA_DB": db}, []string{"user", "add", "alice"}, "correct horse\r\n", 0, "admin false"},
		{"add a taken name", nil, []string{"user", "add", "-db", db, "ALICE"}, "correct horse\n", 1, "taken"},
		{"add a bad name", nil, []string{"user", "add", "-db", db, "a"}, "correct horse\n", 1, "username"},
		{"add with a short password", nil, []string{"user", "add", "-db", db, "bob"}, "short\n", 1, "8 to 1024"},
		{"add without a password", nil, []string{"user", "add", "-db", db, "bob"}, "", 1, "no password"},
		{"passwd", nil, []string{"user", "passwd", "-db", db, "alice"}, "battery staple", 0, "password changed for alice"},
		{"passwd of nobody", nil, []string{"user", "passwd", "nobody", "-db", db}, "battery staple\n", 1, "no such user"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, stdout, stderr := runKaiwa(t, tc.stdin, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", code, tc.code, stdout, stderr)
			}
			out := stdout
			if code != 0 {
				out = stderr
			}
			if !strings.Contains(out, tc.output) {
				t.Errorf("output %q, want it to contain %q", out, tc.output)
			}
		})
	}

	st, err := store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for name, admin := range map[string]bool{"root": true, "ops": true, "alice": false} {
		if u, err := st.UserByName(name); err != nil || u.Admin != admin {
			t.Errorf("user %s = %+v, %v; want admin %t", name, u, err, admin)
		}
	}
	a, err := auth.New(st, auth.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for password, want := range map[string]error{"battery staple": nil, "correct horse": auth.ErrInvalidCredentials} {
		if _, err := a.Login(context.Background(), "alice", password); !errors.Is(err, want) {
			t.Errorf("login as alice with %q after passwd: %v, want %v", password, err, want)
		}
	}
}

func TestLockedDatabase(t *testing.T) {
	db := filepath.Join(t.TempDir(), "kaiwa.db")
	st, err := store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the parallel subtests, unlike defer
	tests := []struct {
		name string
		args []string
	}{
		{"serve", []string{"serve", "-addr", "127.0.0.1:0", "-db", db}},
		{"user add", []string{"user", "add", "-db", db, "bob"}},
		{"user passwd", []string{"user", "passwd", "-db", db, "bob"}},
		{"key rotate", []string{"key", "rotate", "-db", db}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The contract is an exit within 2 s; the store gives up on the lock after 1 s.
			// A process still running after 15 s hangs: it is killed and the test fails (less
			// than that could fail on a slow machine starting a race-built binary).
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			cmd := kaiwaCommand(ctx, nil, tc.args...)
			cmd.Stdin = strings.NewReader("correct horse\n")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("still running after 15 s on a locked database (stderr %q)", stderr.String())
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Errorf("exit: %v, want a non-zero status", err)
			}
			if !strings.Contains(stderr.String(), "locked by another kaiwa process") {
				t.Errorf("stderr %q, want it to say the file is locked by another kaiwa process", stderr.String())
			}
		})
	}
}

// TestServe runs the server as its own process: flags and their env twins reach it, it answers,
// and SIGTERM stops it with status 0.
func TestServe(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		args []string
		ttl  time.Duration
		// procs is the GOMAXPROCS the server should run with; 0: one more than this test's
		// per hashing slot (when the test's own GOMAXPROCS is not set from outside).
		procs int
	}{
		{"env twin applies", []string{"KAIWA_ACCESS_TTL=7s", "KAIWA_REGISTRATION=open"}, nil, 7 * time.Second, 0},
		{"flag wins over its twin", []string{"KAIWA_ACCESS_TTL=7s", "GOMAXPROCS=1"}, []string{"-access-ttl", "5s"}, 5 * time.Second, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			db := filepath.Join(t.TempDir(), "kaiwa.db")
			args := append([]string{"serve", "-addr", "127.0.0.1:0", "-log-format", "json", "-db", db}, tc.args...)
			cmd := kaiwaCommand(ctx, tc.env, args...)
			logLines := startLogging(t, cmd)
			base := waitForLog(t, logLines, "serving")["addr"].(string)

			resp, err := http.Get(base + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != "ok" {
				t.Errorf("healthz: %d %q", resp.StatusCode, body)
			}
			tb, err := client.NewAPI(base, nil).Register(ctx, "alice", "correct horse")
			if err != nil {
				t.Fatal(err)
			}
			var claims jwt.RegisteredClaims
			if _, _, err := jwt.NewParser().ParseUnverified(tb.AccessToken, &claims); err != nil {
				t.Fatal(err)
			}
			if got := claims.ExpiresAt.Sub(claims.IssuedAt.Time); got != tc.ttl {
				t.Errorf("access TTL %v, want %v", got, tc.ttl)
			}
			if want := tc.procs; want != 0 || os.Getenv("GOMAXPROCS") == "" {
				if want == 0 {
					want = runtime.GOMAXPROCS(0) + auth.DefaultHashConcurrency()
				}
				if got := gomaxprocs(t, base); got != want {
					t.Errorf("server GOMAXPROCS %d, want %d", got, want)
				}
			}

			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			waitForLog(t, logLines, "stopped")
			if err := cmd.Wait(); err != nil {
				t.Errorf("exit after SIGTERM: %v, want status 0", err)
			}
		})
	}
}

// gomaxprocs reads the server's GOMAXPROCS from its /metrics.
func gomaxprocs(t *testing.T, base string) int {
	t.Helper()
	n, ok := servertest.Metrics(t, nil, base)["go_sched_gomaxprocs_threads"]
	if !ok {
		t.Fatal("/metrics has no go_sched_gomaxprocs_threads")
	}
	return int(n)
}

// waitForLog reads log lines until one has the message msg, and returns it.
func waitForLog(t *testing.T, lines <-chan map[string]any, msg string) map[string]any {
	t.Helper()
	for line := range lines {
		if line["msg"] == msg {
			return line
		}
	}
	t.Fatalf("the server's log ended before %q", msg)
	return nil
}

func TestBackupCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "kaiwa.db")
	if code, _, stderr := runKaiwa(t, "correct horse\n", "user", "add", "-db", db, "root", "-admin"); code != 0 {
		t.Fatalf("user add: exit %d: %s", code, stderr)
	}
	st, err := store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, err := st.Append(store.DefaultRoom, "1", "root", "c1", "before the backup"); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{}, st, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer srv.Close()
	defer ts.Close()

	out := filepath.Join(dir, "backup.db")
	code, stdout, stderr := runKaiwa(t, "correct horse\n", "backup", "-server", ts.URL, "-user", "root", "-o", out)
	if code != 0 {
		t.Fatalf("backup: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "saved") {
		t.Errorf("stdout %q", stdout)
	}
	copied, err := store.Open(out)
	if err != nil {
		t.Fatalf("open the backup: %v", err)
	}
	defer copied.Close()
	if u, err := copied.UserByName("root"); err != nil || !u.Admin {
		t.Errorf("root in the backup = %+v, %v", u, err)
	}
	if msgs, _, err := copied.Page(store.DefaultRoom, nil, nil, 10); err != nil || len(msgs) != 1 {
		t.Errorf("messages in the backup = %+v, %v", msgs, err)
	}
	if _, err := os.Stat(out + ".partial"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the partial file is left behind: %v", err)
	}

	t.Run("wrong password", func(t *testing.T) {
		out := filepath.Join(dir, "nope.db")
		code, _, stderr := runKaiwa(t, "wrong horse\n", "backup", "-server", ts.URL, "-user", "root", "-o", out)
		if code != 1 || !strings.Contains(stderr, "invalid_credentials") {
			t.Errorf("exit %d, stderr %q; want 1 and invalid_credentials", code, stderr)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a failed backup left %s: %v", out, err)
		}
	})
}

// startLogging starts cmd, whose stderr is JSON log lines (-log-format json), and returns them
// decoded, in order, until it exits; a line that is not JSON comes as {"msg": line}.
func startLogging(t *testing.T, cmd *exec.Cmd) <-chan map[string]any {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logLines := make(chan map[string]any, 100)
	go func() {
		defer close(logLines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logLines <- decodeLogLine(sc.Bytes())
		}
	}()
	return logLines
}

// decodeLogLine decodes one JSON log line of a kaiwa process; a line that is not JSON comes as
// {"msg": line}.
func decodeLogLine(b []byte) map[string]any {
	var line map[string]any
	if json.Unmarshal(b, &line) != nil {
		line = map[string]any{"msg": string(b)}
	}
	return line
}
