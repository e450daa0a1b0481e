// Package clustertest starts real JetStream clusters for tests: embedded NATS nodes on loopback
// ports, each with its own storage in a temporary directory, and Kaiwa engines over them.
package clustertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kaiwa/server"
	"kaiwa/server/cluster"
	"kaiwa/server/servertest"
)

// StartTimeout bounds the forming of a cluster: its nodes elect a JetStream leader, which takes
// seconds, more on a busy machine.
const StartTimeout = 60 * time.Second

// Nodes starts n embedded NATS nodes forming one JetStream cluster (replicas n; n = 1: a single
// node, not clustered) and returns them once the stream exists on it. They are shut down when
// the test ends.
func Nodes(tb testing.TB, n int) []*cluster.Node {
	tb.Helper()
	nodes, err := startNodes(tb.TempDir(), n)
	for _, node := range nodes {
		tb.Cleanup(node.Close)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return nodes
}

// startNodes starts n embedded nodes with their storage in dir; on an error, those started are
// returned with it. Their route ports were free a moment before: when another process took one
// in between, the nodes are started again on other ports.
func startNodes(dir string, n int) ([]*cluster.Node, error) {
	for attempt := 1; ; attempt++ {
		nodes, err := startNodesOnce(filepath.Join(dir, fmt.Sprintf("try-%d", attempt)), n)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return nodes, err
		}
		for _, node := range nodes {
			node.Close()
		}
	}
}

func startNodesOnce(dir string, n int) ([]*cluster.Node, error) {
	ports, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	nodes := make([]*cluster.Node, n)
	errs := make([]error, n)
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i := range n {
		cfg := cluster.Config{
			Embed:    "127.0.0.1:-1",
			Dir:      filepath.Join(dir, fmt.Sprintf("nats-%d", i)),
			Name:     fmt.Sprintf("node-%d", i),
			Replicas: n,
		}
		if n > 1 {
			cfg.Cluster, cfg.Routes = fmt.Sprintf("127.0.0.1:%d", ports[i]), routes
		}
		wg.Go(func() {
			// A node that cannot start leaves the others waiting for it until ctx ends.
			if nodes[i], errs[i] = cluster.Start(ctx, cfg); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	var started []*cluster.Node
	for _, node := range nodes {
		if node != nil {
			started = append(started, node)
		}
	}
	var failed []error
	for i, err := range errs {
		if err != nil {
			failed = append(failed, fmt.Errorf("node %d: %w", i, err))
		}
	}
	if failed != nil {
		return started, errors.Join(failed...)
	}
	return nodes, nil
}

// Engines opens one engine per node, concurrently, each over a new cache file in tb.TempDir().
// They are closed when the test ends.
func Engines(tb testing.TB, nodes []*cluster.Node) []*cluster.Engine {
	tb.Helper()
	dir := tb.TempDir()
	engines := make([]*cluster.Engine, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, node := range nodes {
		wg.Go(func() { engines[i], errs[i] = Open(node, filepath.Join(dir, fmt.Sprintf("cache-%d.db", i))) })
	}
	wg.Wait()
	for i, e := range engines {
		if e != nil {
			tb.Cleanup(func() { e.Close() })
		}
		if errs[i] != nil {
			tb.Fatalf("engine %d: %v", i, errs[i])
		}
	}
	return engines
}

// Open opens an engine on node over the cache at path, within StartTimeout.
func Open(node *cluster.Node, path string) (*cluster.Engine, error) {
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	return cluster.Open(ctx, node, path, nil)
}

// freePorts returns n loopback ports free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Server is a whole Kaiwa server of a cluster node, on a loopback port.
type Server struct {
	*httptest.Server
	Engine *cluster.Engine
	Kaiwa  *server.Server
	stop   func()
}

// Stop stops the server, then its engine and its NATS node, as if its process died: its sockets
// are closed and what the node held in memory is lost. Calls after the first do nothing.
func (s *Server) Stop() { s.stop() }

// Servers starts one Kaiwa server with cfg over each engine, with its node's Broker and
// Presence, serving as `kaiwa serve` does. They are stopped when the test ends.
func Servers(tb testing.TB, engines []*cluster.Engine, cfg server.Config) []*Server {
	tb.Helper()
	log := slog.New(slog.DiscardHandler)
	var servers []*Server
	for _, e := range engines {
		broker, err := cluster.NewBroker(e.Node())
		if err != nil {
			tb.Fatal(err)
		}
		presence, err := cluster.NewPresence(e.Node())
		if err != nil {
			tb.Fatal(err)
		}
		cfg := cfg
		cfg.Broker, cfg.Presence = broker, presence
		srv, err := server.New(cfg, e, log)
		if err != nil {
			tb.Fatal(err)
		}
		ts := servertest.Serve(tb, srv, log)
		var once sync.Once
		stop := func() {
			once.Do(func() {
				srv.Close()
				ts.Close()
				broker.Close()
				presence.Close()
			})
		}
		tb.Cleanup(stop)
		servers = append(servers, &Server{Server: ts, Engine: e, Kaiwa: srv, stop: func() {
			// NATS first: a process that dies tells the other nodes nothing more.
			e.Node().Close()
			stop()
			e.Close()
		}})
	}
	return servers
}

// shared is the JetStream cluster that the tests of one test binary share (SharedURLs).
var shared struct {
	once  sync.Once
	dir   string
	nodes []*cluster.Node
	urls  []string
	err   error
	next  atomic.Int64 // the last namespace handed out
}

// SharedURLs returns the client URLs of a three-node JetStream cluster that every test of the
// binary shares: started by the first test that asks (forming it takes seconds), stopped by
// StopShared, which the package's TestMain calls. Tests keep apart on it by namespace (Fresh).
func SharedURLs(tb testing.TB) []string {
	tb.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "kaiwa-clustertest-")
		if shared.err != nil {
			return
		}
		shared.nodes, shared.err = startNodes(shared.dir, 3)
		for _, n := range shared.nodes {
			shared.urls = append(shared.urls, n.ClientURL())
		}
	})
	if shared.err != nil {
		tb.Fatalf("shared cluster: %v", shared.err)
	}
	return shared.urls
}

// StopShared stops the shared cluster, if it was started, and removes its storage.
func StopShared() {
	for _, n := range shared.nodes {
		n.Close()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
}

// Fresh starts three whole Kaiwa servers with cfg on the shared cluster, each connected to
// another of its NATS nodes, in a namespace of their own whose stream (three replicas) is
// deleted when the test ends.
func Fresh(tb testing.TB, cfg server.Config) []*Server {
	tb.Helper()
	urls := SharedURLs(tb)
	ns := fmt.Sprintf("test%d", shared.next.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	var nodes []*cluster.Node
	for _, url := range urls {
		n, err := cluster.Start(ctx, cluster.Config{URLs: []string{url}, Namespace: ns, Replicas: len(urls)})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(n.Close)
		nodes = append(nodes, n)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := nodes[0].DeleteStream(ctx); err != nil {
			tb.Logf("delete the stream of %s: %v", ns, err)
		}
	})
	return Servers(tb, Engines(tb, nodes), cfg)
}
