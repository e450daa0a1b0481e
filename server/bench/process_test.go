package bench

import (
	"context"
	"runtime"
	"testing"
	"time"
)

func TestCPUFiguresSayWhenNotMeasured(t *testing.T) {
	clock := 10 * time.Millisecond
	readable := func() (time.Duration, bool) { return clock, true }
	m := startCPU(readable)
	clock += 4 * time.Millisecond
	if got := m.perEvent(400); got != 10*time.Microsecond {
		t.Errorf("perEvent = %v, want 10µs", got)
	}
	if got := cpuText(m.perEvent(400)); got != "10.0 µs" {
		t.Errorf("cpuText = %q", got)
	}

	unreadable := startCPU(func() (time.Duration, bool) { return 0, false })
	d := unreadable.perEvent(400)
	if got := cpuText(d); got != "not measured" {
		t.Errorf("cpuText of an unreadable clock = %q, want not measured", got)
	}
	figures := addCPU(map[string]float64{}, "cpu_us_per_delivery", d)
	if _, ok := figures["cpu_us_per_delivery"]; ok {
		t.Error("a figure that was not measured is in the JSON figures")
	}

	if _, ok := selfCPU(); !ok && runtime.GOOS == "linux" {
		t.Error("selfCPU cannot read this process's CPU time on Linux")
	}
}

// TestAtRandomPhaseSpreadsCallers: callers started together first call at points spread over
// the period, not at the same instant.
func TestAtRandomPhaseSpreadsCallers(t *testing.T) {
	const callers, period = 50, 500 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	first := make(chan time.Duration, callers)
	for range callers {
		go func() {
			called := false
			atRandomPhase(ctx, period, func() {
				if !called {
					called = true
					first <- time.Since(start)
				}
			})
		}()
	}
	lo, hi := time.Hour, time.Duration(0)
	for range callers {
		d := <-first
		lo, hi = min(lo, d), max(hi, d)
	}
	if hi-lo < period/4 {
		t.Fatalf("first calls between %v and %v: not spread over the %v period", lo, hi, period)
	}
}
