// Package server assembles Kaiwa's HTTP server: the API, the WebSocket and the web app over one
// store.
package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"kaiwa/server/api"
	"kaiwa/server/auth"
	"kaiwa/server/connlimit"
	"kaiwa/server/hub"
	"kaiwa/server/metrics"
	"kaiwa/server/setup"
	"kaiwa/server/store"
	"kaiwa/server/web"
	"kaiwa/shared/proto"
)

// Config is the server's configuration; cmd/kaiwa fills it from flags.
type Config struct {
	AccessTTL     time.Duration // access JWT lifetime; 0 means 10m
	RefreshTTL    time.Duration // refresh session lifetime, sliding; 0 means 720h
	Origins       []string      // extra allowed origins for /ws and /api/auth/*
	Registration  bool          // open registration
	SecureCookies string        // "auto" (""), "always" or "never"
	IPConnLimit   int           // open sockets per client IP; 0 means no limit (and no TCP cap per IP)
	UserConnLimit int           // open sockets per user; 0 means no limit
	// RateLimitsOff lifts the rate limits of registrations per client IP and room creations
	// per user (-rate-limits off), for benchmarks and trusted networks.
	RateLimitsOff bool
	Setup         setup.Config // /setup and /ca.crt (-tls-self); zero: both answer 404
	// Broker carries typing between the nodes of a cluster, Presence the online users of
	// rooms, PresenceRefresh how often a node publishes its own again (hub.Config); zero
	// values: this process alone.
	Broker          hub.Broker
	Presence        hub.Presence
	PresenceRefresh time.Duration
}

// Server is Kaiwa's HTTP side. Close it to end every open socket.
type Server struct {
	auth    *auth.Auth
	hub     *hub.Hub
	metrics *metrics.Metrics
	conns   *connlimit.Limiter
	handler http.Handler
	log     *slog.Logger
}

// HealthChecker is a store.Engine that depends on a service beyond the process, as a cluster
// node depends on JetStream: /healthz answers 503 while Healthy fails.
type HealthChecker interface {
	Healthy(ctx context.Context) error
}

// HealthTimeout bounds a HealthChecker's answer to /healthz.
const HealthTimeout = 2 * time.Second

// New builds the server over an open store (a *store.Store, or a cluster node's engine) and
// makes its hub the store's Observer: the store must not be shared with another server.
func New(cfg Config, st store.Engine, log *slog.Logger) (*Server, error) {
	a, err := auth.New(st, auth.Config{AccessTTL: cfg.AccessTTL, RefreshTTL: cfg.RefreshTTL})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if cfg.SecureCookies == "" {
		cfg.SecureCookies = "auto"
	}
	met := metrics.New()
	h := hub.New(hub.Config{IPConnLimit: cfg.IPConnLimit, UserConnLimit: cfg.UserConnLimit, Metrics: met,
		Broker: cfg.Broker, Presence: cfg.Presence, PresenceRefresh: cfg.PresenceRefresh}, st, a, log)
	st.SetObserver(h)
	apiCfg := api.Config{Origins: auth.NewOrigins(cfg.Origins, cfg.SecureCookies == "always"), Registration: cfg.Registration, SecureCookies: cfg.SecureCookies, Hub: h, Metrics: met}
	if !cfg.RateLimitsOff {
		apiCfg.Registrations, apiCfg.RoomCreations = api.NewAbuseLimiter(nil), api.NewAbuseLimiter(nil)
	}
	mux := http.NewServeMux()
	api.New(apiCfg, st, a, auth.NewThrottle(auth.ThrottleConfig{}, nil), log).Register(mux)
	mux.Handle("GET /metrics", met.Handler())
	setup.New(cfg.Setup).Register(mux)
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
		if hc, ok := st.(HealthChecker); ok {
			ctx, cancel := context.WithTimeout(r.Context(), HealthTimeout)
			defer cancel()
			if hc.Healthy(ctx) != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write([]byte("storage unreachable: messages cannot be stored"))
				return
			}
		}
		w.Write([]byte("ok"))
	})
	webApp, err := web.New(log)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	mux.Handle("/", webApp)
	conns := connlimit.New(connlimit.ForFileLimit(TCPConnsPerIP(cfg.IPConnLimit), connlimit.FileLimit()), log)
	registerConnMetrics(met.Registry(), conns)
	s := &Server{auth: a, hub: h, metrics: met, conns: conns, log: log, handler: securityHeaders(bodyDeadline(mux))}
	return s, nil
}

// Listen listens on the TCP address addr with the server's connection caps (see Limit).
func (s *Server) Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return s.Limit(ln), nil
}

// Limit wraps ln with the server's connection caps: at most TCPConnsPerIP(IPConnLimit)
// connections per client IP, and in total as many as the open-file limit allows with
// connlimit.Reserve descriptors kept free, of which the last connlimit.Newcomers only for
// addresses that hold fewer than connlimit.NewcomerConns. Connections over a cap are closed at
// once. Every listener of one Server shares its caps.
func (s *Server) Limit(ln net.Listener) net.Listener {
	total, newcomers := s.conns.Total()
	s.log.Info("connection_limits", slog.Int("per_ip", s.conns.PerIP()), slog.Int("total", total),
		slog.Int("newcomers", newcomers), slog.Int("file_limit", connlimit.FileLimit()))
	return s.conns.Listener(ln)
}

// TCPConnHeadroom is how many TCP connections a client IP may hold beyond its WebSocket limit,
// for its plain HTTP requests: a browser keeps at most 6 connections per host beside its
// sockets, so 64 lets about ten browsers behind one address load pages and sign in while their
// tabs hold every socket they are allowed.
const TCPConnHeadroom = 64

// TCPConnsPerIP returns the cap on open TCP connections per client IP for a limit of ipConnLimit
// WebSockets per IP: every socket is a TCP connection, so the cap is that limit plus
// TCPConnHeadroom. An ipConnLimit of 0 (no limit, for benchmarks) means no cap either.
func TCPConnsPerIP(ipConnLimit int) int {
	if ipConnLimit <= 0 {
		return 0
	}
	return ipConnLimit + TCPConnHeadroom
}

// registerConnMetrics serves the open and refused TCP connection counts of conns.
func registerConnMetrics(reg *prometheus.Registry, conns *connlimit.Limiter) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kaiwa_tcp_connections", Help: "Open TCP connections: requests, idle keep-alives and WebSockets.",
	}, func() float64 { return float64(conns.Open()) }))
	for _, reason := range []string{connlimit.ReasonPerIP, connlimit.ReasonTotal} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "kaiwa_tcp_connections_refused_total",
			Help:        "TCP connections closed at accept, by the cap they were over: per_ip or total.",
			ConstLabels: prometheus.Labels{"cap": reason},
		}, func() float64 { return float64(conns.Refused(reason)) }))
	}
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

// Timeouts of the HTTP server. A request's headers and its body each have a bound; there is no
// overall read or write timeout: sockets live for hours and a backup of a large file streams for
// minutes; both bound their own writes.
const (
	// ReadHeaderTimeout bounds how long a client may take to send its request headers, so that
	// a slow client cannot hold connections open for free.
	ReadHeaderTimeout = 10 * time.Second
	// ReadBodyTimeout bounds how long a client may take to send a request body, counted from the
	// end of its headers: the largest body the API reads, 64 KiB, must come at 6.4 KiB/s or
	// faster; a sign-in of a few hundred bytes has all of it. A client too slow has its
	// connection closed, as net/http closes one whose headers are too slow.
	ReadBodyTimeout = 10 * time.Second
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

// bodyDeadline reads a request's body before the handler runs, up to the API's 64 KiB and a byte
// more, and closes the connection of a client that has not sent it within ReadBodyTimeout.
// http.Server.ReadTimeout would not do: it also bounds reading while a response streams (a
// backup) and would cancel it. Requests without a body, WebSocket upgrades among them, pass
// untouched; a body over 64 KiB stays under the deadline while the handler refuses it and the
// HTTP server discards it.
func bodyDeadline(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if rc.SetReadDeadline(time.Now().Add(ReadBodyTimeout)) != nil || r.ContentLength > proto.MaxBodyBytes {
			h.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, proto.MaxBodyBytes+1))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// Closes the connection without an answer and without a log line.
			panic(http.ErrAbortHandler)
		}
		if err == nil && len(body) <= proto.MaxBodyBytes {
			rc.SetReadDeadline(time.Time{}) // all read: the handler may take its time
		}
		// Whatever is left, and any error of the read, comes after what was read.
		r = r.WithContext(r.Context())
		r.Body = readCloser{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		h.ServeHTTP(w, r)
	})
}

type readCloser struct {
	io.Reader
	io.Closer
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
