package main

import (
	"bytes"
	"context"
	"net"
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

// TestServeEmbeddedNATS runs `kaiwa serve` with an embedded NATS node over the same files again
// and again, and adds an administrator through it with `kaiwa user add -nats`: what was stored
// is there after a restart, a damaged cache is refused, and a node without its cache rebuilds
// it from the stream.
func TestServeEmbeddedNATS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	natsAddr := ln.Addr().String()
	ln.Close()
	cache := filepath.Join(dir, "kaiwa.db")
	args := []string{"serve", "-addr", "127.0.0.1:0", "-log-format", "json", "-db", cache, "-nats-embed", natsAddr}
	signIn := func(t *testing.T, api *client.API) {
		t.Helper()
		ctx := context.Background()
		if _, err := api.Login(ctx, "alice", "correct horse"); err != nil {
			t.Fatalf("alice: %v", err)
		}
		if tb, err := api.Login(ctx, "boss", "a boss's password"); err != nil || !tb.User.Admin {
			t.Fatalf("the administrator added through the cluster: %+v, %v", tb.User, err)
		}
	}

	serveOnce(t, args, func(api *client.API) {
		if _, err := api.Register(context.Background(), "alice", "correct horse"); err != nil {
			t.Fatal(err)
		}
		if code, _, stderr := runKaiwa(t, "a boss's password\n", "user", "add", "boss", "-admin", "-nats", "nats://"+natsAddr); code != 0 {
			t.Fatalf("user add through the cluster: exit %d: %s", code, stderr)
		}
		signIn(t, api)
	})
	serveOnce(t, args, func(api *client.API) { signIn(t, api) })
	if _, err := os.Stat(filepath.Join(dir, "nats", "jetstream")); err != nil {
		t.Errorf("the embedded node's storage is not beside -db: %v", err)
	}

	// A damaged cache is refused with the way out; without it, the node rebuilds it.
	data, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, []byte(`"name":"alice"`))
	if at < 0 {
		t.Fatal("alice is not in the cache")
	}
	const pageSize = 4096
	copy(data[at/pageSize*pageSize:], bytes.Repeat([]byte{0x5a}, pageSize))
	if err := os.WriteFile(cache, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := kaiwaCommand(ctx, nil, args...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "rebuilds its cache") {
		t.Fatalf("serving from a damaged cache: %v\n%s", err, out)
	}
	if err := os.Remove(cache); err != nil {
		t.Fatal(err)
	}
	serveOnce(t, args, func(api *client.API) { signIn(t, api) })
}

// serveOnce runs `kaiwa serve` with args, checks /healthz, calls use with an API client of it,
// and stops it with SIGTERM.
func serveOnce(t *testing.T, args []string, use func(api *client.API)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := kaiwaCommand(ctx, nil, args...)
	logLines := startLogging(t, cmd)
	base := waitForLog(t, logLines, "serving")["addr"].(string)
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz %d", resp.StatusCode)
	}
	use(client.NewAPI(base, nil))
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, logLines, "stopped")
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v, want status 0", err)
	}
}
