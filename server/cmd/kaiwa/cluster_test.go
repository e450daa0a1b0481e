package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"kaiwa/shared/client"
)

func TestClusterFlagsRefused(t *testing.T) {
	db := filepath.Join(t.TempDir(), "kaiwa.db")
	for _, args := range [][]string{
		{"serve", "-db", db, "-nats", "nats://127.0.0.1:4222", "-nats-embed", "127.0.0.1:4222"},
		{"serve", "-db", db, "-nats-cluster", "127.0.0.1:6222"},
		{"serve", "-db", db, "-nats-routes", "nats-route://127.0.0.1:6222"},
		{"serve", "-db", db, "-nats-dir", "nats"},
		{"serve", "-db", db, "-replicas", "3"},
		{"serve", "-db", db, "-nats-embed", "127.0.0.1:4222", "-replicas", "-1"},
	} {
		if code, _, stderr := runKaiwa(t, "", args...); code != 2 || !strings.Contains(stderr, "Usage:") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and the usage", args, code, stderr)
		}
	}
}

// TestServeEmbeddedNATS runs `kaiwa serve` with an embedded NATS node twice over the same files:
// what was stored before the restart is there after it.
func TestServeEmbeddedNATS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := []string{"serve", "-addr", "127.0.0.1:0", "-log-format", "json", "-db", filepath.Join(dir, "kaiwa.db"),
		"-nats-embed", "127.0.0.1:-1"}
	for round := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := kaiwaCommand(ctx, nil, args...)
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
				var line map[string]any
				if json.Unmarshal(sc.Bytes(), &line) != nil {
					line = map[string]any{"msg": sc.Text()}
				}
				logLines <- line
			}
		}()
		base := waitForLog(t, logLines, "serving")["addr"].(string)
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("round %d: /healthz %d", round, resp.StatusCode)
		}
		api := client.NewAPI(base, nil)
		if round == 0 {
			_, err = api.Register(ctx, "alice", "correct horse")
		} else {
			_, err = api.Login(ctx, "alice", "correct horse")
		}
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		waitForLog(t, logLines, "stopped")
		if err := cmd.Wait(); err != nil {
			t.Errorf("round %d: exit after SIGTERM: %v, want status 0", round, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "nats", "jetstream")); err != nil {
		t.Errorf("the embedded node's storage is not beside -db: %v", err)
	}
}
