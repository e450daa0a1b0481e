package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kaiwa/server/cluster"
)

// TestEmbedCannotListen starts an embedded node whose route port is taken: Start gives up at
// once with the reason, which is also logged, instead of waiting for ctx as if the node were
// only slow to read its storage.
func TestEmbedCannotListen(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := cluster.Start(ctx, cluster.Config{
		Embed:   "127.0.0.1:-1",
		Cluster: taken.Addr().String(),
		Dir:     filepath.Join(t.TempDir(), "nats"),
		Log:     slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err == nil {
		n.Close()
		t.Fatal("a node whose route port is taken started")
	}
	if errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Start = %v; want the route listener's error, before ctx ends", err)
	}
	if !strings.Contains(logs.String(), "level=ERROR msg=cluster_nats") {
		t.Errorf("the node's fatal error was not logged; the log:\n%s", logs.String())
	}
}
