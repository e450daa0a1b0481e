package bench

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// histogram records durations in log-linear buckets (32 per power of two, so about 3 %
// precision) with atomic counters: many goroutines record at once without a lock.
type histogram struct {
	counts [2048]atomic.Uint64
	n      atomic.Uint64
}

// bucketOf maps microseconds to a bucket: exact below 64, then the top 6 bits.
func bucketOf(us uint64) int {
	if us < 64 {
		return int(us)
	}
	exp := bits.Len64(us) - 6
	return 64 + (exp-1)*32 + int(us>>exp) - 32
}

// bucketValue is the lowest value of bucket i, in microseconds.
func bucketValue(i int) uint64 {
	if i < 64 {
		return uint64(i)
	}
	exp := (i-64)/32 + 1
	return uint64((i-64)%32+32) << exp
}

func (h *histogram) record(d time.Duration) {
	us := uint64(max(d, 0) / time.Microsecond)
	i := min(bucketOf(us), len(h.counts)-1)
	h.counts[i].Add(1)
	h.n.Add(1)
}

func (h *histogram) count() uint64 { return h.n.Load() }

// quantile returns the duration below which a fraction q of the samples fall.
func (h *histogram) quantile(q float64) time.Duration {
	total := h.n.Load()
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total-1)) + 1
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return time.Duration(bucketValue(i)) * time.Microsecond
		}
	}
	return 0
}

// clone returns a copy of the counts as they are now.
func (h *histogram) clone() *histogram {
	c := &histogram{}
	for i := range h.counts {
		c.counts[i].Store(h.counts[i].Load())
	}
	c.n.Store(h.n.Load())
	return c
}

// windows measures n windows of time of the given length, one after the other: each starts
// from an empty h and ends with a copy of it.
func (h *histogram) windows(window time.Duration, n int) windows {
	w := make(windows, n)
	for i := range w {
		h.reset()
		time.Sleep(window)
		w[i] = h.clone()
	}
	return w
}

// add adds other's samples to h.
func (h *histogram) add(other *histogram) {
	for i := range h.counts {
		h.counts[i].Add(other.counts[i].Load())
	}
	h.n.Add(other.n.Load())
}

func (h *histogram) reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.n.Store(0)
}

// quantiles is a latency distribution: one histogram, or the windows of a step.
type quantiles interface {
	quantile(q float64) time.Duration
}

// windows are the latencies of one step measured in several windows of time. On a shared
// machine a burst of work from elsewhere spoils a window, not the figure: each quantile is the
// median of the windows' own.
type windows []*histogram

func (w windows) quantile(q float64) time.Duration {
	if len(w) == 0 {
		return 0
	}
	v := make([]time.Duration, len(w))
	for i, h := range w {
		v[i] = h.quantile(q)
	}
	slices.Sort(v)
	mid := len(v) / 2
	if len(v)%2 == 0 {
		return (v[mid-1] + v[mid]) / 2
	}
	return v[mid]
}

// String says how the figures were taken and how far the windows' p99s spread.
func (w windows) String() string {
	if len(w) == 0 {
		return "no windows"
	}
	p99 := make([]string, len(w))
	for i, h := range w {
		p99[i] = fmt.Sprintf("%.1f", msf(h.quantile(.99)))
	}
	return fmt.Sprintf("median of %d windows, p99 per window %s ms", len(w), strings.Join(p99, ", "))
}
