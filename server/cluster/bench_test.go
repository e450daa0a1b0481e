package cluster_test

import (
	"fmt"
	"strconv"
	"testing"

	"kaiwa/server/cluster/clustertest"
	"kaiwa/server/store"
)

// BenchmarkEngineAppendBatch commits batches of messages through a three-node cluster on
// loopback, reported per message, in the shapes of store's BenchmarkAppendBatch: each batch is
// one operation stored by a majority (fsync on each) and applied by every node.
func BenchmarkEngineAppendBatch(b *testing.B) {
	engines := clustertest.Engines(b, clustertest.Nodes(b, 3))
	for _, shape := range []struct{ rooms, batch int }{{400, 600}, {100, 180}, {100, 2}} {
		b.Run(fmt.Sprintf("rooms=%d/batch=%d", shape.rooms, shape.batch), func(b *testing.B) {
			prefix := fmt.Sprintf("b%d-%d-", shape.rooms, shape.batch)
			for r := range shape.rooms {
				if _, err := engines[r%3].CreateRoom(prefix + strconv.Itoa(r)); err != nil {
					b.Fatal(err)
				}
			}
			reqs := make([]store.AppendRequest, shape.batch)
			n := 0
			for b.Loop() {
				for i := range reqs {
					n++
					reqs[i] = store.AppendRequest{Room: prefix + strconv.Itoa(n%shape.rooms), UserID: "1", From: "bench", ClientID: strconv.Itoa(n), Text: "durable"}
				}
				if _, err := engines[n%3].AppendBatch(reqs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*shape.batch), "ns/msg")
		})
	}
}
