// Package metrics holds Kaiwa's Prometheus instruments in a registry owned by one server, so
// that two servers in one process (tests, benchmarks) never share counters.
//
// Instruments are meant to be cheap on hot paths: callers add once per commit batch or per
// delivery group, never per message in a loop.
package metrics

import (
	"math"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one server's set of instruments and the registry that serves them. Its methods
// are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	// Connections is the number of open, authenticated sockets.
	Connections prometheus.Gauge
	// Rooms is the number of rooms with live state in this process.
	Rooms prometheus.Gauge
	// MessagesIn counts messages stored (retries of an acked send excluded).
	MessagesIn prometheus.Counter
	// MessagesOut counts message frames queued to sockets, live and replayed.
	MessagesOut prometheus.Counter
	// CommitSeconds observes how long each commit batch took to reach the disk.
	CommitSeconds prometheus.Histogram
	// QueueOverflows counts sockets closed with 4008 because their client did not read.
	QueueOverflows prometheus.Counter
	// CommitFailures counts commit batches the store failed to write (a full disk, an I/O
	// error); each of their sends was answered `unavailable`.
	CommitFailures prometheus.Counter
	// RefreshReuse counts refresh tokens presented after their rotation's grace: each revoked
	// a session.
	RefreshReuse prometheus.Counter
	// LoginThrottled counts login attempts refused with 429.
	LoginThrottled prometheus.Counter

	// The stages a message waits through between its frame being read and its bytes being
	// written to a member's socket, one histogram each (kaiwa_fanout_stage_seconds by stage).
	// They are observed per send, per commit batch or per socket write, never per delivery in
	// a loop. Decode: frame read → handed to the committer (decoding, checks, a full queue).
	// Queue: waiting for the committer. Commit: the batch's write and fsync, until the store
	// reports it durable. Fanout: durable → queued in every member's outbox (the messages
	// before it in the batch included). Wake: queued in an idle outbox → its writer took it.
	// Write: one WebSocket write of what the writer took.
	StageDecode, StageQueue, StageCommit, StageFanout, StageWake, StageWrite prometheus.Observer

	stages       *prometheus.HistogramVec
	authFailures *prometheus.CounterVec
	// Auth failures by kind, resolved once so that counting costs no label lookup.
	LoginFailures   prometheus.Counter // wrong username or password
	RefreshFailures prometheus.Counter // unknown, expired, revoked or reused refresh token
	TokenFailures   prometheus.Counter // access token missing, invalid or expired (API and socket)
}

// New returns a fresh set of instruments in its own registry, with the Go runtime and process
// collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kaiwa_connections", Help: "Open authenticated WebSocket connections.",
		}),
		Rooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kaiwa_rooms", Help: "Rooms with live state in this process.",
		}),
		MessagesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kaiwa_messages_in_total", Help: "Messages stored.",
		}),
		MessagesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kaiwa_messages_out_total", Help: "Message frames queued to sockets, live and replayed.",
		}),
		CommitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kaiwa_commit_seconds",
			Help:    "Time to store one batch of messages durably.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2},
		}),
		QueueOverflows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kaiwa_queue_overflows_total", Help: "Sockets closed with 4008: the client did not read fast enough.",
		}),
		CommitFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kaiwa_commit_failures_total", Help: "Commit batches that failed to reach the disk (full disk, I/O error); their sends got unavailable.",
		}),
		RefreshReuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kaiwa_refresh_reuse_total", Help: "Rotated refresh tokens presented again; each revoked its session.",
		}),
		LoginThrottled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kaiwa_login_throttled_total", Help: "Login attempts refused with 429 after repeated failures.",
		}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kaiwa_fanout_stage_seconds",
			Help: "Where a message waits between its frame being read and a member's write, by stage: decode, queue, commit, fanout, wake, write.",
			// 10 µs to 1.3 s, four buckets per doubling.
			Buckets: prometheus.ExponentialBuckets(10e-6, math.Pow(2, 0.25), 69),
		}, []string{"stage"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kaiwa_auth_failures_total", Help: "Refused credentials, by kind: login, refresh, token.",
		}, []string{"kind"}),
	}
	m.LoginFailures = m.authFailures.WithLabelValues("login")
	m.RefreshFailures = m.authFailures.WithLabelValues("refresh")
	m.TokenFailures = m.authFailures.WithLabelValues("token")
	m.StageDecode = m.stages.WithLabelValues("decode")
	m.StageQueue = m.stages.WithLabelValues("queue")
	m.StageCommit = m.stages.WithLabelValues("commit")
	m.StageFanout = m.stages.WithLabelValues("fanout")
	m.StageWake = m.stages.WithLabelValues("wake")
	m.StageWrite = m.stages.WithLabelValues("write")
	m.reg.MustRegister(
		m.Connections, m.Rooms, m.MessagesIn, m.MessagesOut, m.CommitSeconds, m.QueueOverflows, m.CommitFailures,
		m.RefreshReuse, m.LoginThrottled, m.authFailures, m.stages,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// ObserveCommit records one commit batch of n new messages that took d.
func (m *Metrics) ObserveCommit(d time.Duration, n int) {
	m.CommitSeconds.Observe(d.Seconds())
	if n > 0 {
		m.MessagesIn.Add(float64(n))
	}
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry returns the registry, for tests and for adding collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }
