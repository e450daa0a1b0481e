package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"kaiwa/server/cluster"
	"kaiwa/server/store"
)

// clusterFlags are serve's cluster-mode flags (SPEC §8).
type clusterFlags struct {
	urls, embed, cluster, routes, dir *string
	replicas                          *int
}

func addClusterFlags(fs *flag.FlagSet) *clusterFlags {
	return &clusterFlags{
		urls:     fs.String("nats", "", "cluster mode: comma-separated URLs of an existing NATS JetStream system (set sync_interval: always on it); -db is then this node's cache"),
		embed:    fs.String("nats-embed", "", "cluster mode: host:port where an embedded NATS node with JetStream listens for clients; Kaiwa uses it"),
		cluster:  fs.String("nats-cluster", "", "host:port of the embedded node's route listener: with -nats-routes, the embedded nodes of several Kaiwa processes form one JetStream cluster"),
		routes:   fs.String("nats-routes", "", "comma-separated nats-route://host:port of the other embedded nodes"),
		dir:      fs.String("nats-dir", "", "the embedded node's JetStream storage (default: nats beside -db)"),
		replicas: fs.Int("replicas", 0, "replicas of the stream Kaiwa creates (default 3 if clustered, else 1)"),
	}
}

// on reports whether serve runs in cluster mode.
func (f *clusterFlags) on() bool { return *f.urls != "" || *f.embed != "" }

// check refuses flags that do not go together.
func (f *clusterFlags) check() error {
	switch {
	case *f.urls != "" && *f.embed != "":
		return fmt.Errorf("%w: -nats and -nats-embed exclude each other", errUsage)
	case (*f.cluster != "" || *f.routes != "" || *f.dir != "") && *f.embed == "":
		return fmt.Errorf("%w: -nats-cluster, -nats-routes and -nats-dir need -nats-embed", errUsage)
	case *f.replicas != 0 && !f.on():
		return fmt.Errorf("%w: -replicas needs -nats or -nats-embed", errUsage)
	case *f.replicas < 0 || *f.replicas > 5:
		return fmt.Errorf("%w: -replicas must be between 1 and 5", errUsage)
	}
	return nil
}

// open starts the node (waiting, until ctx ends, for a new cluster to elect its leader) and the
// engine over the cache at dbPath, checked as -check says. A damaged cache is refused with the
// way to rebuild it.
func (f *clusterFlags) open(ctx context.Context, dbPath, check string, log *slog.Logger) (*cluster.Node, *cluster.Engine, error) {
	dir := *f.dir
	if dir == "" && *f.embed != "" {
		dir = filepath.Join(filepath.Dir(dbPath), "nats")
	}
	log.Info("cluster_starting", slog.String("nats", *f.urls), slog.String("nats_embed", *f.embed),
		slog.String("nats_cluster", *f.cluster), slog.String("nats_dir", dir))
	node, err := cluster.Start(ctx, cluster.Config{
		URLs: splitList(*f.urls), Embed: *f.embed, Cluster: *f.cluster, Routes: splitList(*f.routes),
		Dir: dir, Replicas: *f.replicas, Log: log,
	})
	if err != nil {
		return nil, nil, err
	}
	e, err := cluster.Open(ctx, node, dbPath, log)
	if err == nil {
		switch check {
		case "full":
			err = e.Check()
		case "quick":
			err = e.QuickCheck()
		}
		if err != nil {
			e.Close()
		}
	}
	if errors.Is(err, store.ErrCorrupt) {
		err = fmt.Errorf("%w\n\n"+
			"The cache %s of this cluster node is damaged; kaiwa will not serve from it.\n"+
			"Stop kaiwa, move the file aside and start kaiwa again: the node rebuilds its cache\n"+
			"from the cluster's stream.", err, dbPath)
	}
	if err != nil {
		node.Close()
		return nil, nil, err
	}
	log.Info("cluster_ready", slog.Uint64("applied", e.Applied()), slog.Uint64("resumed_from", e.ResumedFrom()))
	return node, e, nil
}

// openClusterTool connects a command to the cluster at urls, through an engine over a cache of
// its own in a temporary directory (filled from the whole stream), for a one-off change.
func openClusterTool(urls []string) (*cluster.Engine, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	node, err := cluster.Start(ctx, cluster.Config{URLs: urls})
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "kaiwa-tool-")
	if err != nil {
		node.Close()
		return nil, nil, err
	}
	e, err := cluster.Open(ctx, node, filepath.Join(dir, "cache.db"), nil)
	if err != nil {
		node.Close()
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return e, func() {
		e.Close()
		node.Close()
		os.RemoveAll(dir)
	}, nil
}
