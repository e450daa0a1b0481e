package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// DefaultNamespace prefixes every subject Kaiwa uses: its one stream of operations, KAIWA on
	// the subject kaiwa.ops, holds every mutation of the store in the order every node applies
	// it; kaiwa.typing.* and kaiwa.presence.* carry what is never stored.
	DefaultNamespace = "kaiwa"
	// MaxOpBytes bounds one operation's encoding: JetStream's default max_payload is 1 MiB.
	MaxOpBytes = 1 << 20
)

// Config says where a node's JetStream is. With Embed empty it connects to URLs; with Embed set
// it runs a NATS server with JetStream in this process, listening for clients at Embed, and
// joins the other embedded nodes at Routes through its route listener at Cluster.
type Config struct {
	URLs     []string // nats:// URLs of an existing JetStream system (-nats)
	Embed    string   // host:port of the embedded node's client listener (-nats-embed)
	Cluster  string   // host:port of the embedded node's route listener (-nats-cluster)
	Routes   []string // nats-route://host:port of the other embedded nodes (-nats-routes)
	Dir      string   // the embedded node's JetStream storage (-nats-dir)
	Name     string   // the embedded node's server name, unique in the cluster; empty: from Cluster or Embed
	Replicas int      // replicas of the stream; 0: those it has, or when creating it 3 in a cluster, else 1
	// Namespace (a-z 0-9 _) prefixes the subjects and, in upper case, names the stream; empty:
	// DefaultNamespace. Kaiwas with different namespaces share a NATS system without meeting.
	Namespace string
	Log       *slog.Logger
}

// Clustered reports whether the configuration forms or joins a cluster of embedded nodes.
func (c Config) Clustered() bool { return c.Cluster != "" || len(c.Routes) > 0 }

// Node is one Kaiwa process's connection to JetStream, and its embedded NATS server if it runs
// one. Its methods may be called concurrently.
type Node struct {
	srv    *natsserver.Server // nil when connected to an external system
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	ns     string
	log    *slog.Logger

	closeOnce sync.Once
}

// Start starts the embedded server if cfg asks for one, connects, and creates the stream if
// missing. In a new cluster JetStream answers only once its nodes have elected a leader, which
// takes seconds: Start retries until ctx ends.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if strings.Trim(cfg.Namespace, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
		return nil, fmt.Errorf("cluster: namespace %q: only a-z 0-9 _", cfg.Namespace)
	}
	n := &Node{log: cfg.Log, ns: cfg.Namespace}
	opts := []nats.Option{nats.Name("kaiwa"), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
	url := strings.Join(cfg.URLs, ",")
	if cfg.Embed != "" {
		srv, err := embed(ctx, cfg)
		if err != nil {
			return nil, err
		}
		n.srv = srv
		opts = append(opts, nats.InProcessServer(srv))
	} else if url == "" {
		return nil, errors.New("cluster: neither NATS URLs nor an embedded node")
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("cluster: connect: %w", err)
	}
	n.nc = nc
	if n.js, err = jetstream.New(nc); err != nil {
		n.Close()
		return nil, fmt.Errorf("cluster: jetstream: %w", err)
	}
	for {
		// Short attempts: until a leader is elected a request is not answered at all, and the
		// first one after the election should come soon.
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		n.stream, err = n.ensureStream(actx, cfg)
		cancel()
		if err == nil {
			return n, nil
		}
		n.log.Info("cluster_waiting_for_jetstream", slog.Any("err", err))
		select {
		case <-ctx.Done():
			n.Close()
			return nil, fmt.Errorf("cluster: stream %s: %w", n.streamName(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ensureStream returns the stream, creating it if missing. An existing stream keeps its
// replicas unless cfg.Replicas asks for others: a node started with defaults (a tool with one
// URL) must not shrink it.
func (n *Node) ensureStream(ctx context.Context, cfg Config) (jetstream.Stream, error) {
	scfg := jetstream.StreamConfig{
		Name:       n.streamName(),
		Subjects:   []string{n.subject("ops")},
		Storage:    jetstream.FileStorage,
		Replicas:   cfg.Replicas,
		DenyDelete: true,
		DenyPurge:  true,
		MaxMsgSize: MaxOpBytes,
		Duplicates: 2 * time.Minute,
	}
	stream, err := n.js.Stream(ctx, n.streamName())
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if scfg.Replicas == 0 {
			scfg.Replicas = 1
			if cfg.Clustered() || n.nc.ConnectedClusterName() != "" {
				scfg.Replicas = 3
			}
		}
		return n.js.CreateStream(ctx, scfg)
	case err != nil:
		return nil, err
	case scfg.Replicas == 0 || scfg.Replicas == stream.CachedInfo().Config.Replicas:
		return stream, nil
	}
	n.log.Info("cluster_stream_replicas", slog.Int("from", stream.CachedInfo().Config.Replicas), slog.Int("to", scfg.Replicas))
	return n.js.UpdateStream(ctx, scfg)
}

// embed starts the embedded NATS server with JetStream, fsyncing every write so that a stored
// operation survives the machine's crash, and waits until it listens or ctx ends. JetStream
// reads its storage before the server listens, which takes as long as the storage is large
// and the disk slow: no fixed limit fits every node. A server that cannot start (its route
// port taken, its storage unreadable) is given up at once, with its reason.
func embed(ctx context.Context, cfg Config) (*natsserver.Server, error) {
	host, port, err := hostPort(cfg.Embed)
	if err != nil {
		return nil, fmt.Errorf("cluster: -nats-embed: %w", err)
	}
	name := cfg.Name
	if name == "" {
		name = "kaiwa-" + strings.NewReplacer(":", "-", ".", "-").Replace(cmpOr(cfg.Cluster, cfg.Embed))
	}
	opts := &natsserver.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.Dir,
		SyncAlways: true,
		NoSigs:     true,
		NoLog:      true,
	}
	if cfg.Cluster != "" {
		h, p, err := hostPort(cfg.Cluster)
		if err != nil {
			return nil, fmt.Errorf("cluster: -nats-cluster: %w", err)
		}
		opts.Cluster = natsserver.ClusterOpts{Name: "kaiwa", Host: h, Port: p}
		opts.Routes = natsserver.RoutesFromStr(strings.Join(cfg.Routes, ","))
		// A route to a node that went away is tried again every second, on each of its
		// connections: say so at the first attempt and then once a minute, not every time.
		opts.ReconnectErrorReports = 60
	}
	srv, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("cluster: embedded node: %w", err)
	}
	logs := &natsLog{log: cfg.Log}
	srv.SetLoggerV2(logs, false, false, false)
	go srv.Start()
	for !srv.ReadyForConnections(250 * time.Millisecond) {
		if fatal := logs.fatal(); fatal != "" {
			srv.Shutdown()
			return nil, fmt.Errorf("cluster: embedded node %s: %s", name, fatal)
		}
		if ctx.Err() != nil {
			srv.Shutdown()
			return nil, fmt.Errorf("cluster: embedded node %s not ready for connections: %w", name, context.Cause(ctx))
		}
	}
	return srv, nil
}

// natsLog passes the embedded NATS server's errors and warnings to Kaiwa's log (cluster_nats),
// and keeps the first fatal one: the server does not stop on it, it only says so.
type natsLog struct {
	log *slog.Logger

	mu    sync.Mutex
	first string
}

func (l *natsLog) Fatalf(format string, v ...any) {
	text := fmt.Sprintf(format, v...)
	l.mu.Lock()
	if l.first == "" {
		l.first = text
	}
	l.mu.Unlock()
	l.log.Error("cluster_nats", slog.String("fatal", text))
}

func (l *natsLog) Errorf(format string, v ...any) {
	l.log.Error("cluster_nats", slog.String("error", fmt.Sprintf(format, v...)))
}

func (l *natsLog) Warnf(format string, v ...any) {
	l.log.Warn("cluster_nats", slog.String("warning", fmt.Sprintf(format, v...)))
}

func (*natsLog) Noticef(string, ...any) {}
func (*natsLog) Debugf(string, ...any)  {}
func (*natsLog) Tracef(string, ...any)  {}

// fatal returns the first fatal error the server reported, or "".
func (l *natsLog) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first
}

func hostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return host, port, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// LastSeq returns the stream's last sequence as JetStream's leader knows it: every operation
// acknowledged before the call is at or below it.
func (n *Node) LastSeq(ctx context.Context) (uint64, error) {
	info, err := n.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("cluster: stream info: %w", err)
	}
	return info.State.LastSeq, nil
}

// streamName is the name of the stream of operations.
func (n *Node) streamName() string { return strings.ToUpper(n.ns) }

// subject returns the subject of tokens in the node's namespace.
func (n *Node) subject(tokens ...string) string {
	return n.ns + "." + strings.Join(tokens, ".")
}

// DeleteStream deletes the stream of operations with everything in it, for tests that share a
// NATS system; a node never calls it.
func (n *Node) DeleteStream(ctx context.Context) error {
	return n.js.DeleteStream(ctx, n.streamName())
}

// Name returns the embedded node's server name, "" when connected to an external system.
func (n *Node) Name() string {
	if n.srv == nil {
		return ""
	}
	return n.srv.Name()
}

// ClientURL returns the nats:// URL where the embedded node listens for clients, "" when
// connected to an external system.
func (n *Node) ClientURL() string {
	if n.srv == nil {
		return ""
	}
	return n.srv.ClientURL()
}

// Replicas returns the stream's replicas.
func (n *Node) Replicas(ctx context.Context) (int, error) {
	info, err := n.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("cluster: stream info: %w", err)
	}
	return info.Config.Replicas, nil
}

// StreamLeader returns the server name of the stream's leader, which orders every write.
func (n *Node) StreamLeader(ctx context.Context) (string, error) {
	info, err := n.stream.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("cluster: stream info: %w", err)
	}
	if info.Cluster == nil {
		return "", nil
	}
	return info.Cluster.Leader, nil
}

// Close closes the connection and shuts the embedded server down, if any. Calls after the first
// do nothing.
func (n *Node) Close() {
	n.closeOnce.Do(func() {
		if n.nc != nil {
			n.nc.Close()
		}
		if n.srv != nil {
			n.srv.Shutdown()
			n.srv.WaitForShutdown()
		}
	})
}
