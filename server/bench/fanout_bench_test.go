package bench

import (
	"context"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	kaiwaserver "kaiwa/server"
	"kaiwa/server/servertest"
)

// inProcessServer is a Kaiwa server in this process, over a new database, for profiling.
func inProcessServer(b testing.TB) *httptest.Server {
	b.Helper()
	return servertest.Start(b, kaiwaserver.Config{Registration: true, SecureCookies: "never", RateLimitsOff: true}, nil).Server
}

// BenchmarkFanout runs the 20×100 fan-out at 500 publishes/s against a server in this process,
// so that `go test -bench Fanout -cpuprofile` profiles the hub (the load generator shows up in
// the profile too, under this package and the client side of coder/websocket).
func BenchmarkFanout(b *testing.B) {
	ts := inProcessServer(b)
	ctx := context.Background()
	tokens, err := users(ctx, ts.URL, "fan", 20)
	if err != nil {
		b.Fatal(err)
	}
	load, err := newRoomLoad(ctx, &env{}, &server{URL: ts.URL}, "room", 20, 100, tokens)
	if err != nil {
		b.Fatal(err)
	}
	defer load.close()
	b.ResetTimer()
	for b.Loop() {
		for _, r := range []float64{50, 150, 300, 500} {
			rate, h := load.step(ctx, r, time.Second, 2*time.Second, 2)
			b.Logf("%v publishes/s: %.0f deliveries/s p50 %v p99 %v", r, rate, h.quantile(.5), h.quantile(.99))
		}
		rate, h := load.step(ctx, 500, time.Second, time.Second, 1)
		b.ReportMetric(rate, "deliveries/s")
		b.ReportMetric(msf(h.quantile(.5)), "p50-ms")
		b.ReportMetric(msf(h.quantile(.99)), "p99-ms")
	}
}

// BenchmarkIdleConns holds 2000 idle authenticated sockets against a server in this process
// and reports the heap and stacks they add per connection, server and client sides together
// (the client side is a lean coder/websocket client of roughly the same shape).
func BenchmarkIdleConns(b *testing.B) {
	ts := inProcessServer(b)
	ctx := context.Background()
	tokens, err := users(ctx, ts.URL, "idle", 4)
	if err != nil {
		b.Fatal(err)
	}
	const n = 2000
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		members := make([]*member, n)
		for i := range members {
			m, err := dial(ctx, ts.URL, tokens[i%len(tokens)])
			if err != nil {
				b.Fatal(err)
			}
			members[i] = m
			go m.read(ctx, func([]byte) {})
		}
		time.Sleep(time.Second)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n/1024, "heap-KiB/conn")
		b.ReportMetric(float64(after.StackInuse-before.StackInuse)/n/1024, "stack-KiB/conn")
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/n, "goroutines/conn")
		for _, m := range members {
			m.close()
		}
	}
}
