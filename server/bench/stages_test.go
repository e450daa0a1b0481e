package bench

import (
	"context"
	"testing"
	"time"
)

// TestStagesCoverTheFanout sends messages through a server in this process and reads every
// stage of kaiwa_fanout_stage_seconds back from /metrics: each stage was observed, and the
// deliveries the members saw took at least as long as the commit before them.
func TestStagesCoverTheFanout(t *testing.T) {
	ts := inProcessServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tokens, err := users(ctx, ts.URL, "stage", 4)
	if err != nil {
		t.Fatal(err)
	}
	load, err := newRoomLoad(ctx, &env{}, &server{URL: ts.URL}, "stage", 2, 5, tokens)
	if err != nil {
		t.Fatal(err)
	}
	defer load.close()
	before, err := scrapeStages(ctx, ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	sendCtx, stop := context.WithCancel(ctx)
	go load.publish(sendCtx, 40)
	for load.delivered.Load() < 100 && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	after, err := scrapeStages(ctx, ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	stages := after.since(before)
	t.Log(stages)
	for _, stage := range stageNames {
		if stages.count(stage) == 0 {
			t.Errorf("stage %s was not observed", stage)
		}
		if p50, p99 := stages.quantile(stage, .5), stages.quantile(stage, .99); p50 > p99 {
			t.Errorf("stage %s: p50 %v above p99 %v", stage, p50, p99)
		}
	}
	if got := stages.quantile("commit", .5); got <= 0 {
		t.Errorf("commit p50 %v: the commit takes time", got)
	}
	if got, commit := load.lat.quantile(.5), stages.quantile("commit", .01); got < commit {
		t.Errorf("members saw p50 %v, less than the fastest commits %v", got, commit)
	}
	// The split at the commit reads each message's ts, the commit's start to the millisecond:
	// what follows it holds the whole commit.
	if load.split.before.count() == 0 {
		t.Fatal("no delivery was split at its commit")
	}
	if got, commit := load.split.after.quantile(.5), stages.quantile("commit", .01)-time.Millisecond/2; got < commit {
		t.Errorf("commit start → member read p50 %v, less than the fastest commits %v", got, commit)
	}
}
