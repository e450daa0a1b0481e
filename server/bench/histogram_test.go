package bench

import (
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
