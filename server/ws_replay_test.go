package server_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"kaiwa/server"
	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

// TestReplayWhileSending: a member joins with after=0 into a room with a long history while
// another keeps sending. It must see every seq once, in order, from 1 to the last: the replay
// and the live messages meet without a gap or a duplicate.
func TestReplayWhileSending(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, server.Config{})
	const stored = 3000
	reqs := make([]store.AppendRequest, stored)
	for i := range reqs {
		reqs[i] = store.AppendRequest{Room: "general", UserID: "0", From: "history", ClientID: strconv.Itoa(i), Text: "old"}
	}
	if _, err := ts.st.AppendBatch(reqs); err != nil {
		t.Fatal(err)
	}
	sender := ts.connect(t, ts.register(t, "sender").AccessToken)
	sender.write(proto.Join{Type: proto.TypeJoin, Room: "general"})
	sender.next(proto.TypeJoined)

	done := make(chan struct{})
	const live = 60
	go func() {
		defer close(done)
		for i := range live {
			b := []byte(`{"type":"send","room":"general","id":"live` + strconv.Itoa(i) + `","text":"new"}`)
			if err := sender.ws.Write(context.Background(), 1, b); err != nil {
				return
			}
			time.Sleep(60 * time.Millisecond) // within the send rate of 20/s
		}
	}()
	joiner := ts.connect(t, ts.register(t, "joiner").AccessToken)
	zero := uint64(0)
	joiner.write(proto.Join{Type: proto.TypeJoin, Room: "general", After: &zero})
	joiner.next(proto.TypeJoined)
	<-done
	for want := uint64(1); want <= stored+live; want++ {
		m := joiner.next(proto.TypeMessage)
		if m.Seq != want {
			t.Fatalf("got seq %d, want %d: a gap or a duplicate where replay meets live", m.Seq, want)
		}
	}
}
