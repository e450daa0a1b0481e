// Package clustertest starts real JetStream clusters for tests: embedded NATS nodes on loopback
// ports, each with its own storage in a temporary directory, and Kaiwa engines over them.
package clustertest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"kaiwa/server"
	"kaiwa/server/cluster"
)

// StartTimeout bounds the forming of a cluster: its nodes elect a JetStream leader, which takes
// seconds, more on a busy machine.
const StartTimeout = 60 * time.Second

// Nodes starts n embedded NATS nodes forming one JetStream cluster (replicas n; n = 1: a single
// node, not clustered) and returns them once the stream exists on it. They are shut down when the test ends.
func Nodes(tb testing.TB, n int) []*cluster.Node {
	tb.Helper()
	ports := freePorts(tb, n)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	dir := tb.TempDir()
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
		wg.Go(func() { nodes[i], errs[i] = cluster.Start(ctx, cfg) })
	}
	wg.Wait()
	for i, node := range nodes {
		if node != nil {
			tb.Cleanup(node.Close)
		}
		if errs[i] != nil {
			tb.Fatalf("node %d: %v", i, errs[i])
		}
	}
	return nodes
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
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// Server is a whole Kaiwa server of a cluster node, on a loopback port.
type Server struct {
	*httptest.Server
	Engine *cluster.Engine
	Kaiwa  *server.Server
}

// Servers starts one Kaiwa server with cfg over each engine, with the node's Broker, serving as
// `kaiwa serve` does.
// They are stopped when the test ends.
func Servers(tb testing.TB, engines []*cluster.Engine, cfg server.Config) []*Server {
	tb.Helper()
	log := slog.New(slog.DiscardHandler)
	var servers []*Server
	for _, e := range engines {
		broker, err := cluster.NewBroker(e.Node())
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { broker.Close() })
		cfg := cfg
		cfg.Broker = broker
		srv, err := server.New(cfg, e, log)
		if err != nil {
			tb.Fatal(err)
		}
		ln, err := srv.Listen("127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		ts := httptest.NewUnstartedServer(srv.Handler())
		ts.Listener.Close()
		ts.Listener = ln
		ts.Config = server.HTTPServer("", srv.Handler(), log)
		ts.Start()
		tb.Cleanup(func() {
			srv.Close()
			ts.Close()
		})
		servers = append(servers, &Server{Server: ts, Engine: e, Kaiwa: srv})
	}
	return servers
}
