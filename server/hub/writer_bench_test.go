package hub

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"kaiwa/server/metrics"
	"kaiwa/shared/proto"
)

// BenchmarkWriterWakeUp is what one delivery costs the server at a low rate, where a member's
// writer wakes for one commit's frames and ends: a commit's frames queued in an idle outbox,
// its writer started as a commit starts it, the frames written to a real socket upgraded as
// Serve upgrades one, through the socket's small buffers. The client drains the socket in the
// background, and the next wake-up waits for its message. An op is one wake-up; allocs/op is
// the figure that does not depend on the load of the machine.
func BenchmarkWriterWakeUp(b *testing.B) {
	for _, frames := range []int{1, 4} {
		b.Run(fmt.Sprintf("frames=%d", frames), func(b *testing.B) {
			conns := make(chan *conn, 1)
			h := &Hub{met: metrics.New()}
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				capture := &hijackCapture{ResponseWriter: w}
				ws, err := websocket.Accept(capture, r, nil)
				if err != nil {
					b.Error(err)
					return
				}
				c := newConn(h, ws, capture.conn)
				conns <- c
				c.readLoop() // answers the client's close
			}))
			defer ts.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer client.CloseNow()
			got := make(chan struct{}, 1)
			go func() {
				for {
					_, r, err := client.Reader(ctx)
					if err != nil {
						return
					}
					io.Copy(io.Discard, r)
					got <- struct{}{}
				}
			}()
			c := <-conns
			frame := encode(proto.Message{Type: proto.TypeMessage, Room: "general", Seq: 1, ID: "c1", From: "alice",
				Text: "a message of an ordinary length, a sentence or two", TS: time.Now().UTC()})
			b.ReportAllocs()
			for b.Loop() {
				starts := &writerStarts{}
				at := time.Now()
				for range frames {
					c.out.offerHeld(frame, at, starts)
				}
				starts.start()
				<-got              // the wake-up's one message
				for c.out.busy() { // its writer ending
					runtime.Gosched()
				}
			}
			c.close(websocket.StatusNormalClosure, "")
		})
	}
}
