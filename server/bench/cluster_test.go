package bench

import (
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"kaiwa/shared/proto"
)

// buildKaiwa builds the kaiwa command into the test's temporary directory and returns its path.
func buildKaiwa(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kaiwa")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "kaiwa/server/cmd/kaiwa")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build kaiwa: %v\n%s", err, out)
	}
	return bin
}

// TestClusterTarget starts what `kaiwa bench -nats` measures, three `kaiwa serve` processes
// forming one cluster, and finds one chat there: a user registered on the first node signs in
// on the others, a message sent on one node reaches a member on another, and the CPU clock
// reads all three.
func TestClusterTarget(t *testing.T) {
	ctx, srv := testCluster(t)
	if len(srv.nodes) != clusterNodes || srv.url(1) == srv.url(2) || srv.url(0) != srv.url(clusterNodes) {
		t.Fatalf("clients go to %s, %s, %s, then %s: not the three nodes in turn", srv.url(0), srv.url(1), srv.url(2), srv.url(3))
	}
	tokens, err := users(ctx, srv.URL, "tester", 2)
	if err != nil {
		t.Fatal(err)
	}
	a, err := dial(ctx, srv.url(1), tokens[0])
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	b, err := dial(ctx, srv.url(2), tokens[1])
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	joined := make(chan struct{}, 2)
	texts := make(chan string, 16)
	onLine := func(line []byte) {
		switch frameType(line) {
		case proto.TypeJoined:
			joined <- struct{}{}
		case proto.TypeMessage:
			texts <- jsonField(line, "text")
		}
	}
	go a.read(ctx, func(line []byte) {
		if frameType(line) == proto.TypeJoined {
			joined <- struct{}{}
		}
	})
	go b.read(ctx, onLine)
	for _, m := range []*member{a, b} {
		if err := m.send(ctx, proto.Join{Type: proto.TypeJoin, Room: "general"}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-joined:
		case <-time.After(30 * time.Second):
			t.Fatal("no joined within 30 s")
		}
	}
	if err := a.send(ctx, proto.Send{Type: proto.TypeSend, Room: "general", ID: "x1", Text: "across nodes"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for got := ""; got != "across nodes"; {
		select {
		case got = <-texts:
		case <-deadline:
			t.Fatal("the message sent on node 1 did not reach the member on node 2 within 30 s")
		}
	}
	if d, ok := srv.cpu(); !ok || d <= 0 {
		t.Errorf("cluster CPU time = %v, %t", d, ok)
	}
}

// testCluster builds kaiwa and starts what `kaiwa bench -nats` measures, stopped when the test
// ends; the context bounds the test to 4 minutes.
func testCluster(t *testing.T) (context.Context, *server) {
	t.Helper()
	bin := buildKaiwa(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	srv, err := startCluster(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	return ctx, srv
}
