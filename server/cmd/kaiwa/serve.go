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
	"os/signal"
	"strings"
	"syscall"
	"time"

	"kaiwa/server"
	"kaiwa/server/store"
)

// shutdownGrace bounds the whole shutdown after SIGINT or SIGTERM.
const shutdownGrace = 10 * time.Second

func serve(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("kaiwa serve", flag.ContinueOnError)
	addr := fs.String("addr", "localhost:8080", "listen address")
	dbPath := fs.String("db", "data/kaiwa.db", "bbolt database file (directory created 0700, file 0600)")
	accessTTL := fs.Duration("access-ttl", 10*time.Minute, "access token lifetime")
	refreshTTL := fs.Duration("refresh-ttl", 720*time.Hour, "refresh token lifetime (sliding, rotated on use)")
	origins := fs.String("origins", "", "extra allowed origins for /ws and /api/auth/*, comma separated (empty: same host only)")
	registration := fs.String("registration", "open", "open or closed")
	secureCookies := fs.String("secure-cookies", "auto", "auto (Secure when TLS or X-Forwarded-Proto: https), always or never")
	ipConnLimit := fs.Int("ip-conn-limit", 256, "open sockets per client IP; 0 = no limit")
	logFormat := fs.String("log-format", "text", "text or json")
	rest, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, rest[0])
	}
	if err := oneOf("-registration", *registration, "open", "closed"); err != nil {
		return err
	}
	if err := oneOf("-secure-cookies", *secureCookies, "auto", "always", "never"); err != nil {
		return err
	}
	if err := oneOf("-log-format", *logFormat, "text", "json"); err != nil {
		return err
	}
	if *accessTTL < time.Second || *refreshTTL < time.Second || *ipConnLimit < 0 {
		return fmt.Errorf("%w: -access-ttl and -refresh-ttl must be at least 1s, -ip-conn-limit at least 0", errUsage)
	}
	log := newLogger(*logFormat, stderr)

	st, err := store.Open(*dbPath)
	if err != nil {
		return err
	}
	defer st.Close()
	srv, err := server.New(server.Config{
		AccessTTL: *accessTTL, RefreshTTL: *refreshTTL, Origins: splitList(*origins),
		Registration: *registration == "open", SecureCookies: *secureCookies, IPConnLimit: *ipConnLimit,
	}, st, log)
	if err != nil {
		return err
	}
	httpServer := &http.Server{
		Addr:              *addr,
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	log.Info("serving", slog.String("addr", "http://"+ln.Addr().String()), slog.String("db", *dbPath), slog.String("version", version))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- httpServer.Serve(ln) }()
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
	log.Info("stopped")
	return nil
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
