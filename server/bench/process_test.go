package bench

import (
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
