package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"kaiwa/server"
	"kaiwa/server/auth"
	"kaiwa/server/cluster"
	"kaiwa/server/hub"
	"kaiwa/server/store"
)

// shutdownGrace bounds the whole shutdown after SIGINT or SIGTERM.
const shutdownGrace = 10 * time.Second

func serve(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("kaiwa serve", flag.ContinueOnError)
	addr := fs.String("addr", "localhost:8080", "listen address (:8443 when serving HTTPS and not given)")
	dbPath := fs.String("db", "data/kaiwa.db", "bbolt database file (directory created 0700, file 0600)")
	accessTTL := fs.Duration("access-ttl", 10*time.Minute, "access token lifetime")
	refreshTTL := fs.Duration("refresh-ttl", 720*time.Hour, "refresh token lifetime (sliding, rotated on use)")
	origins := fs.String("origins", "", "extra allowed origins for /ws and /api/auth/*, comma separated (empty: same host only)")
	registration := fs.String("registration", "open", "open or closed")
	secureCookies := fs.String("secure-cookies", "auto", "auto (Secure when TLS or X-Forwarded-Proto: https), always or never")
	ipConnLimit := fs.Int("ip-conn-limit", 256, "open sockets per client IP; 0 = no limit")
	userConnLimit := fs.Int("user-conn-limit", 32, "open sockets per user; 0 = no limit")
	rateLimits := fs.String("rate-limits", "on", "on or off: off lifts the rate limits of registrations per client IP and room creations per user")
	logFormat := fs.String("log-format", "text", "text or json")
	check := fs.String("check", "full", "check the database file at startup: full (reads it all), quick (meta, users, sessions, each room's newest message) or off")
	tlsf := addTLSFlags(fs)
	clf := addClusterFlags(fs)
	rest, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, rest[0])
	}
	if err := tlsf.check(); err != nil {
		return err
	}
	if err := clf.check(); err != nil {
		return err
	}
	tlsf.applyDefaults(fs, addr, secureCookies)
	if err := oneOf("-registration", *registration, "open", "closed"); err != nil {
		return err
	}
	if err := oneOf("-secure-cookies", *secureCookies, "auto", "always", "never"); err != nil {
		return err
	}
	if err := oneOf("-rate-limits", *rateLimits, "on", "off"); err != nil {
		return err
	}
	if err := oneOf("-log-format", *logFormat, "text", "json"); err != nil {
		return err
	}
	if err := oneOf("-check", *check, "full", "quick", "off"); err != nil {
		return err
	}
	if *accessTTL < time.Second || *refreshTTL < time.Second || *ipConnLimit < 0 || *userConnLimit < 0 {
		return fmt.Errorf("%w: -access-ttl and -refresh-ttl must be at least 1s, -ip-conn-limit and -user-conn-limit at least 0", errUsage)
	}
	log := newLogger(*logFormat, stderr)
	hashProcessors()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// st is what the server stores through; local is the file on this machine: the database in
	// a single process, the node's cache in cluster mode (where TLS material stays per node).
	var st store.Engine
	var local *store.Store
	var broker hub.Broker     // nil: one process
	var presence hub.Presence // nil: one process
	if clf.on() {
		node, e, err := clf.open(ctx, *dbPath, *check, log)
		if err != nil {
			return err
		}
		defer node.Close()
		defer e.Close()
		b, err := cluster.NewBroker(node)
		if err != nil {
			return err
		}
		defer b.Close()
		p, err := cluster.NewPresence(node)
		if err != nil {
			return err
		}
		defer p.Close()
		st, local, broker, presence = e, e.Store, b, p
	} else {
		s, err := openChecked(*dbPath, *check, log)
		if err != nil {
			return err
		}
		defer s.Close()
		st, local = s, s
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	ts, err := tlsf.start(local, ln.Addr(), log)
	if err != nil {
		return err
	}
	srv, err := server.New(server.Config{
		AccessTTL: *accessTTL, RefreshTTL: *refreshTTL, Origins: splitList(*origins),
		Registration: *registration == "open", SecureCookies: *secureCookies, IPConnLimit: *ipConnLimit,
		UserConnLimit: *userConnLimit, RateLimitsOff: *rateLimits == "off", Setup: ts.setup, Broker: broker, Presence: presence,
	}, st, log)
	if err != nil {
		return err
	}
	httpServer := server.HTTPServer(*addr, srv.Handler(), log)
	ln = srv.Limit(ln) // with the caps on connections per IP and in total

	served := make(chan error, 2)
	stopExtras, err := ts.startExtras(ln.Addr(), log, served)
	if err != nil {
		return err
	}
	log.Info("serving", slog.String("addr", ts.scheme()+"://"+ln.Addr().String()), slog.String("db", *dbPath), slog.String("version", version))
	go func() { served <- ts.serve(httpServer, ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting_down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	// Sockets first: the HTTP server's Shutdown does not wait for hijacked connections.
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("sockets_shutdown_incomplete", slog.Any("err", err))
	}
	if err := httpServer.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("shutdown_incomplete", slog.Any("err", err))
	}
	stopExtras(shutdownCtx)
	log.Info("stopped")
	return nil
}

// openChecked opens the database and checks it as -check says. A damaged file is refused with
// the way to restore it.
func openChecked(path, check string, log *slog.Logger) (*store.Store, error) {
	st, err := store.Open(path)
	if err == nil {
		start := time.Now()
		switch check {
		case "full":
			err = st.Check()
		case "quick":
			err = st.QuickCheck()
		}
		if err != nil {
			st.Close()
		} else if check != "off" {
			log.Info("database_checked", slog.String("check", check), slog.Duration("took", time.Since(start)))
		}
	}
	if errors.Is(err, store.ErrCorrupt) {
		return nil, fmt.Errorf("%w\n\n"+
			"The database file %s is damaged; kaiwa will not serve from it.\n"+
			"To restore it from a backup made with \"kaiwa backup\":\n"+
			"  1. stop every kaiwa process that uses the file,\n"+
			"  2. move the damaged file aside (keep it until the restore is verified),\n"+
			"  3. copy the backup to %s (mode 0600),\n"+
			"  4. start kaiwa again: it checks the copy before serving.\n"+
			"Messages sent after the backup was taken are lost.", err, path, path)
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

func oneOf(flagName, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%w: %s must be one of %s, not %q", errUsage, flagName, strings.Join(allowed, ", "), v)
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// hashProcessors gives the Go scheduler one processor more per argon2id hashing slot, unless
// GOMAXPROCS is set. A hash holds a processor for its whole run on its own low-priority thread:
// without the extra one, chat work had one processor fewer than the cores during every login,
// whatever the thread's priority. With it, chat keeps a processor per core and the kernel, which
// prefers chat's threads to the hash's, decides who runs.
func hashProcessors() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + auth.DefaultHashConcurrency())
	}
}
