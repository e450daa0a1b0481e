package store

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkAppendBatch commits batches of messages spread over rooms, reported per message:
// 600 over 400 rooms is the shape of the durable-sends benchmark under load, 2 over 100 that
// of fan-out at 500 publishes/s (a commit or so per message).
func BenchmarkAppendBatch(b *testing.B) {
	for _, shape := range []struct{ rooms, batch int }{{400, 600}, {100, 180}, {100, 2}} {
		b.Run(fmt.Sprintf("rooms=%d/batch=%d", shape.rooms, shape.batch), func(b *testing.B) {
			st, err := Open(filepath.Join(b.TempDir(), "kaiwa.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			for r := range shape.rooms {
				if _, err := st.CreateRoom("r" + strconv.Itoa(r)); err != nil {
					b.Fatal(err)
				}
			}
			reqs := make([]AppendRequest, shape.batch)
			n := 0
			for b.Loop() {
				for i := range reqs {
					n++
					reqs[i] = AppendRequest{Room: "r" + strconv.Itoa(n%shape.rooms), UserID: "1", From: "bench", ClientID: strconv.Itoa(n), Text: "durable"}
				}
				if _, err := st.AppendBatch(reqs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*shape.batch), "ns/msg")
		})
	}
}
