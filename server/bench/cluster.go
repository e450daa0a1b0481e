package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// A run with Options.Cluster puts the fan-out and durable-send scenarios on a cluster: three
// `kaiwa serve` processes on loopback, each with its own database, address and embedded NATS
// node, the three nodes forming one JetStream cluster (3 replicas). The load's sockets are
// spread over the three, so that the members of one room sit on different nodes.

// clusterScenarios are the scenarios a cluster run has.
var clusterScenarios = []string{"fanout", "durable"}

const (
	clusterNodes = 3
	// clusterLabel ends the scenario names of a cluster run, so that its rows sit beside the
	// single process's.
	clusterLabel = ", 3-node cluster"
	// clusterStartTimeout bounds the nodes' start: they elect a JetStream leader first.
	clusterStartTimeout = 2 * time.Minute
)

// label is a scenario's name in the table: with clusterLabel in a cluster run.
func (e *env) label(name string) string {
	if e.Cluster {
		return name + clusterLabel
	}
	return name
}

// startTarget starts what the scenario measures: one server, or in a cluster run the cluster.
func (e *env) startTarget(ctx context.Context) (*server, error) {
	if e.Cluster {
		return startCluster(ctx, e.Binary)
	}
	return startServer(ctx, e.Binary)
}

// startCluster starts the nodes of a cluster at once (each waits for the others to elect a
// leader before it serves) and returns them as one server: URL is the first node's, url(i)
// spreads clients over all of them, cpu sums theirs, stop stops them all.
func startCluster(ctx context.Context, bin string) (*server, error) {
	var clients, routes []string
	for range clusterNodes {
		c, err := freeAddr()
		if err != nil {
			return nil, err
		}
		r, err := freeAddr()
		if err != nil {
			return nil, err
		}
		clients, routes = append(clients, c), append(routes, "nats-route://"+r)
	}
	nodes := make([]*server, clusterNodes)
	errs := make([]error, clusterNodes)
	var wg sync.WaitGroup
	for i := range clusterNodes {
		wg.Go(func() {
			nodes[i], errs[i] = startServerWait(ctx, bin, clusterStartTimeout,
				"-nats-embed", clients[i], "-nats-cluster", strings.TrimPrefix(routes[i], "nats-route://"),
				"-nats-routes", strings.Join(routes, ","))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, n := range nodes {
			if n != nil {
				n.stop()
			}
		}
		return nil, fmt.Errorf("bench: start cluster: %w", err)
	}
	return &server{URL: nodes[0].URL, nodes: nodes}, nil
}

// freeAddr returns a loopback host:port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// url is the base URL for the i-th client: in a cluster, the nodes in turn.
func (s *server) url(i int) string {
	if len(s.nodes) > 0 {
		return s.nodes[i%len(s.nodes)].URL
	}
	return s.URL
}
