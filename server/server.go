// Package server assembles Kaiwa's HTTP server: the API, the WebSocket and the web app over one
// store.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"kaiwa/server/api"
	"kaiwa/server/auth"
	"kaiwa/server/hub"
	"kaiwa/server/metrics"
	"kaiwa/server/store"
	"kaiwa/server/web"
)

// Config is the server's configuration; cmd/kaiwa fills it from flags.
type Config struct {
	AccessTTL     time.Duration // access JWT lifetime; 0 means 10m
	RefreshTTL    time.Duration // refresh session lifetime, sliding; 0 means 720h
	Origins       []string      // extra allowed origins for /ws and /api/auth/*
	Registration  bool          // open registration
	SecureCookies string        // "auto" (""), "always" or "never"
	IPConnLimit   int           // open sockets per client IP; 0 means no limit
	UserConnLimit int           // open sockets per user; 0 means no limit
}

// Server is Kaiwa's HTTP side. Close it to end every open socket.
type Server struct {
	auth    *auth.Auth
	hub     *hub.Hub
	metrics *metrics.Metrics
	handler http.Handler
	log     *slog.Logger
}

// New builds the server over an open store.
func New(cfg Config, st *store.Store, log *slog.Logger) (*Server, error) {
	a, err := auth.New(st, auth.Config{AccessTTL: cfg.AccessTTL, RefreshTTL: cfg.RefreshTTL})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if cfg.SecureCookies == "" {
		cfg.SecureCookies = "auto"
	}
	met := metrics.New()
	h := hub.New(hub.Config{IPConnLimit: cfg.IPConnLimit, UserConnLimit: cfg.UserConnLimit, Metrics: met}, st, a, log)
	a.OnRevoke = h.Revoke
	mux := http.NewServeMux()
	api.New(api.Config{Origins: auth.NewOrigins(cfg.Origins), Registration: cfg.Registration, SecureCookies: cfg.SecureCookies, Hub: h, Metrics: met},
		st, a, auth.NewThrottle(auth.ThrottleConfig{}, nil), log).Register(mux)
	mux.Handle("GET /metrics", met.Handler())
	// 503 while commits fail (a full disk): a load balancer or monitor sees it at once. The
	// server keeps serving reads and sign-ins meanwhile.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if h.StorageFailing() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("storage failing: messages cannot be stored"))
			return
		}
		w.Write([]byte("ok"))
	})
	webApp, err := web.New(log)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	mux.Handle("/", webApp)
	s := &Server{auth: a, hub: h, metrics: met, log: log, handler: securityHeaders(mux)}
	return s, nil
}

// Metrics returns the server's instruments, served at /metrics.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// Handler returns the server's root handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Shutdown closes every open socket with 1001 and finishes the commits in flight, within ctx.
// It does not close the store.
func (s *Server) Shutdown(ctx context.Context) error { return s.hub.Close(ctx) }

// Close is Shutdown with a 10 s limit.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}

// Timeouts of the HTTP server. There is no overall read or write timeout: sockets live for hours
// and a backup of a large file streams for minutes; both bound their own writes.
const (
	// ReadHeaderTimeout bounds how long a client may take to send its request headers, so that
	// a slow client cannot hold connections open for free.
	ReadHeaderTimeout = 10 * time.Second
	// IdleTimeout closes keep-alive connections with no request for this long.
	IdleTimeout = 2 * time.Minute
	// MaxHeaderBytes bounds the request headers.
	MaxHeaderBytes = 64 << 10
)

// HTTPServer returns the http.Server that serves handler on addr, with Kaiwa's timeouts and its
// errors logged through log.
func HTTPServer(addr string, handler http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           handler,
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// apiPolicy is the Content-Security-Policy of every response that is not a web page: such a
// response is never a document to render or to frame. The web app sets its own on its pages.
const apiPolicy = "default-src 'none'; frame-ancestors 'none'"

// securityHeaders sets the headers every response carries.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("Referrer-Policy", "no-referrer")
		hdr.Set("X-Frame-Options", "DENY")
		if p := r.URL.Path; strings.HasPrefix(p, "/api/") || p == "/ws" || p == "/healthz" || p == "/metrics" {
			hdr.Set("Content-Security-Policy", apiPolicy)
		}
		h.ServeHTTP(w, r)
	})
}
