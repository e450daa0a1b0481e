package hub

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// writeCounter records the length of every write to the connection it wraps.
type writeCounter struct {
	net.Conn
	mu     sync.Mutex
	writes []int
}

func (c *writeCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, len(p))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// countingWriter hands the hijacked connection wrapped in a writeCounter to whoever hijacks it.
type countingWriter struct {
	http.ResponseWriter
	conn chan *writeCounter
}

func (w *countingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return c, brw, err
	}
	wc := &writeCounter{Conn: c}
	w.conn <- wc
	return wc, brw, nil
}

// TestSocketWritesWholeFrames: through the small buffers a socket is given, every message of
// every size (around the buffer, the header's length forms, the batch limit) reaches the
// client intact, in order, and leaves in one write to the connection, header and all.
func TestSocketWritesWholeFrames(t *testing.T) {
	sizes := []int{0, 1, 9, 13, 14, 15, 100, 125, 126, 127, 512, 4095, 4096, 4097, 65535, 65536, maxBatchBytes, 100_000}
	conns := make(chan *writeCounter, 1)
	done := make(chan error, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		capture := &hijackCapture{ResponseWriter: &countingWriter{ResponseWriter: w, conn: conns}}
		ws, err := websocket.Accept(capture, r, nil)
		if err != nil {
			done <- err
			return
		}
		ws.SetReadLimit(1 << 20)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for _, n := range sizes {
			if err := ws.Write(ctx, websocket.MessageText, message(n)); err != nil {
				done <- err
				return
			}
		}
		// The client's answers, read through the small buffers: a large message, then many
		// small ones sent at once, several to a read.
		for i, want := range clientMessages() {
			typ, got, err := ws.Read(ctx)
			if err == nil && (typ != websocket.MessageText || !bytes.Equal(got, want)) {
				err = fmt.Errorf("the client's message %d came as %d bytes, want %d", i, len(got), len(want))
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}))
	defer ts.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseNow()
	client.SetReadLimit(1 << 20)
	for _, n := range sizes {
		typ, got, err := client.Read(ctx)
		if err != nil {
			t.Fatalf("reading the %d-byte message: %v", n, err)
		}
		if typ != websocket.MessageText || !bytes.Equal(got, message(n)) {
			t.Fatalf("the %d-byte message came as %d bytes, type %v", n, len(got), typ)
		}
	}
	for _, m := range clientMessages() {
		if err := client.Write(ctx, websocket.MessageText, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wc := <-conns
	wc.mu.Lock()
	defer wc.mu.Unlock()
	var want []int
	for _, n := range sizes {
		want = append(want, frameSize(frameHeader(n))) // the 101 answer went out before the counter
	}
	if len(wc.writes) != len(want) {
		t.Fatalf("%d writes for %d frames: %v, want %v", len(wc.writes), len(want), wc.writes, want)
	}
	for i := range want {
		if wc.writes[i] != want[i] {
			t.Fatalf("writes %v, want %v", wc.writes, want)
		}
	}
}

// TestFrameWriterPassesOtherShapes: writes that are not whole frames, or a frame's two
// pieces, still reach the connection whole and in order.
func TestFrameWriterPassesOtherShapes(t *testing.T) {
	var out bytes.Buffer
	w := &frameWriter{conn: &out}
	long := append(frameHeader(200), message(200)...)
	pieces := [][]byte{long[:writeBuffer], long[writeBuffer:100], long[100:], []byte("x"), long}
	var want []byte
	for _, p := range pieces {
		if n, err := w.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		want = append(want, p...)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("wrote %d bytes, not the %d given in order", out.Len(), len(want))
	}
}

// clientMessages is what the client sends in TestSocketWritesWholeFrames.
func clientMessages() [][]byte {
	out := [][]byte{message(70_000)}
	for i := range 300 {
		out = append(out, message(1+i%40))
	}
	return out
}

// message is n bytes of printable text.
func message(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}

// frameHeader is the header of a server's unmasked, final text frame of n bytes.
func frameHeader(n int) []byte {
	switch {
	case n > 65535:
		h := []byte{0x81, 127, 0, 0, 0, 0, 0, 0, 0, 0}
		for i := range 8 {
			h[9-i] = byte(n >> (8 * i))
		}
		return h
	case n > 125:
		return []byte{0x81, 126, byte(n >> 8), byte(n)}
	}
	return []byte{0x81, byte(n)}
}
