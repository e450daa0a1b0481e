package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"os/signal"
	"syscall"
	"time"

	"kaiwa/server/cluster"
	"kaiwa/server/store"
)

// importTimeout bounds the whole import: joining JetStream (a new cluster elects its leader
// first) and storing every operation.
const importTimeout = 30 * time.Minute

const importHelp = `Usage: kaiwa import -nats URL -db FILE [-replicas N]

Copies a single-process database (FILE, with its server stopped) into an empty cluster:
every user and password, session, room, membership, read marker, message (same seqs),
certificate, and the key that names dm rooms. "Empty" means that the cluster's stream holds
nothing, or only the init operation its first node stored on starting (so nobody has signed
in yet). Into a cluster no node has opened, the signing key comes over too; into an initialised
one, the cluster keeps its own, which its running nodes hold: access tokens of the single
process stop verifying and browsers refresh them silently. Any other content is refused.

Flags:
`

// importCmd runs `kaiwa import`.
func importCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kaiwa import", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), importHelp)
		fs.PrintDefaults()
	}
	dbPath := fs.String("db", "data/kaiwa.db", "the single-process bbolt database to copy (its server stopped)")
	urls := fs.String("nats", "", "comma-separated URLs of the cluster's NATS JetStream system (required)")
	replicas := fs.Int("replicas", 0, "replicas of the stream, if the import creates it (default 3 with several URLs, else 1)")
	rest, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	switch {
	case len(rest) > 0:
		return fmt.Errorf("%w: unexpected argument %q", errUsage, rest[0])
	case *urls == "":
		return fmt.Errorf("%w: kaiwa import needs -nats", errUsage)
	case *replicas < 0 || *replicas > 5:
		return fmt.Errorf("%w: -replicas must be between 1 and 5", errUsage)
	}
	if _, err := os.Stat(*dbPath); errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("import: %s: no such database", *dbPath)
	}
	st, err := store.Open(*dbPath)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		return fmt.Errorf("import: %s: %w", *dbPath, err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, importTimeout)
	defer cancel()
	node, err := cluster.Start(ctx, cluster.Config{URLs: splitList(*urls), Replicas: *replicas})
	if err != nil {
		return err
	}
	defer node.Close()
	im, err := cluster.Import(ctx, node, st)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	fmt.Fprintf(stdout, "imported %s: %d buckets and pairs in %d operations (stream seqs %d to %d)\n",
		*dbPath, im.Entries, im.Ops, im.First, im.Last)
	if im.KeptKey {
		fmt.Fprintln(stdout, "the cluster keeps its signing key: access tokens of the single process are void; sessions refresh on their next request")
	}
	return nil
}
