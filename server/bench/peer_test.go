package bench

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestPeerLoadDelivers drives a Centrifugo binary named by KAIWA_BENCH_PEER (skipped without
// one: the peer is not part of Kaiwa) with the peer client: every member connects with its
// token and subscribes, and publishes reach the members with their send times.
func TestPeerLoadDelivers(t *testing.T) {
	bin := os.Getenv("KAIWA_BENCH_PEER")
	if bin == "" {
		t.Skip("KAIWA_BENCH_PEER names no Centrifugo binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := startPeer(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	load, err := newPeerLoad(ctx, &env{}, srv, 2, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer load.close()
	sendCtx, stop := context.WithCancel(ctx)
	go load.publish(sendCtx, 40)
	for load.delivered.Load() < 100 && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if got := load.delivered.Load(); got < 100 {
		t.Fatalf("%d deliveries, want 100", got)
	}
	if acked := load.acked.Load(); acked == 0 {
		t.Error("no publish was answered")
	}
	if p50 := load.lat.quantile(.5); p50 <= 0 || p50 > 10*time.Second {
		t.Errorf("p50 %v: the send times did not come back", p50)
	}
}
