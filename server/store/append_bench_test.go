package store

import (
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkAppendBatch commits batches of 600 messages spread over 400 rooms, the shape of the
// durable-sends benchmark; reported per message.
func BenchmarkAppendBatch(b *testing.B) {
	st, err := Open(filepath.Join(b.TempDir(), "kaiwa.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const rooms, batch = 400, 600
	for r := range rooms {
		if _, err := st.CreateRoom("r" + strconv.Itoa(r)); err != nil {
			b.Fatal(err)
		}
	}
	reqs := make([]AppendRequest, batch)
	n := 0
	b.ResetTimer()
	for b.Loop() {
		for i := range reqs {
			n++
			reqs[i] = AppendRequest{Room: "r" + strconv.Itoa(n%rooms), UserID: "1", From: "bench", ClientID: strconv.Itoa(n), Text: "durable"}
		}
		if _, err := st.AppendBatch(reqs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/msg")
}
