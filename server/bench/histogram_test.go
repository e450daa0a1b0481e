package bench

import (
	"strings"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {0.999, 999 * time.Millisecond}} {
		got := h.quantile(tc.q)
		if diff := float64(got-tc.want) / float64(tc.want); diff > 0.04 || diff < -0.04 {
			t.Errorf("q%.3f = %v, want %v within 4%%", tc.q, got, tc.want)
		}
	}
	for _, us := range []uint64{0, 1, 31, 32, 33, 100, 1000, 123456, 1 << 40} {
		if v := bucketValue(bucketOf(us)); v > us || float64(us-v) > 0.04*float64(us)+1 {
			t.Errorf("bucket of %d starts at %d", us, v)
		}
	}
}

func TestWindowsTakeTheMedian(t *testing.T) {
	w := make(windows, 3)
	for i, us := range []int{100, 50_000, 300} {
		w[i] = &histogram{}
		for range 100 {
			w[i].record(time.Duration(us) * time.Microsecond)
		}
	}
	// The windows' p99s are about 100 µs, 50 ms and 300 µs: one spoiled window does not make
	// the figure.
	if got := w.quantile(.99); got < 290*time.Microsecond || got > 310*time.Microsecond {
		t.Fatalf("median p99 = %v, want about 300µs", got)
	}
	if s := w.String(); !strings.Contains(s, "3 windows") {
		t.Fatalf("String() = %q", s)
	}
}

func TestWindowsMeasureOneAfterAnother(t *testing.T) {
	var h histogram
	h.record(time.Second) // before the first window: not counted
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				h.record(time.Millisecond)
				time.Sleep(time.Millisecond)
			}
		}
	}()
	w := h.windows(50*time.Millisecond, 3)
	if len(w) != 3 {
		t.Fatalf("%d windows, want 3", len(w))
	}
	for i, win := range w {
		if win.count() == 0 || win.quantile(1) >= time.Second {
			t.Errorf("window %d: %d records, max %v: want only the ones made during it", i, win.count(), win.quantile(1))
		}
	}
}
