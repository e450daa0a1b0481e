package server_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"kaiwa/server"
	"kaiwa/shared/proto"
)

// idleSocketBudget is what an idle authenticated socket may hold in the server's heap and
// goroutine stacks together. Its own buffers and its one goroutine are most of it: the bufio
// pair net/http hands over at the upgrade (4 KiB each) alone would break it.
const idleSocketBudget = 10 << 10

// TestIdleSocketFootprint: an idle authenticated socket costs the server one goroutine (its
// reader) and at most idleSocketBudget of heap and stack. The clients are raw TCP connections
// that hold nothing but their descriptor once the hello is read, so that what the process
// gains is the server's.
func TestIdleSocketFootprint(t *testing.T) {
	const n = 200
	ts := newTestServer(t, server.Config{})
	tokens := mintUsers(t, ts.st, "idle", 4)
	addr := strings.TrimPrefix(ts.URL, "http://")
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	open := func() {
		c := handshake(t, addr, tokens[len(conns)%len(tokens)])
		conns = append(conns, c)
	}
	open() // the first socket of a process makes what every later one shares
	before := footprint()
	for len(conns) < n+1 {
		open()
	}
	after := footprint()
	goroutines := float64(after.goroutines-before.goroutines) / n
	heap := float64(after.heap-before.heap) / n
	stack := float64(after.stack-before.stack) / n
	t.Logf("per idle socket: %.2f goroutines, %.0f B heap, %.0f B stack", goroutines, heap, stack)
	if goroutines > 1.05 {
		t.Errorf("%.2f goroutines per idle socket, want 1 (its reader)", goroutines)
	}
	budget := float64(idleSocketBudget)
	if raceEnabled {
		// The race detector's instrumentation takes the reader's stack from 4 KiB to 8 KiB
		// where it parks; the heap is the same in both builds.
		budget += 4 << 10
	}
	if heap+stack > budget {
		t.Errorf("%.0f B of heap and stack per idle socket, want at most %.0f", heap+stack, budget)
	}
}

type usage struct {
	goroutines  int
	heap, stack uint64
}

// footprint is the process's goroutines, live heap and goroutine stacks, after collecting
// what can be.
func footprint() usage {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC() // pools are emptied over two cycles
	runtime.ReadMemStats(&m)
	return usage{goroutines: runtime.NumGoroutine(), heap: m.HeapAlloc, stack: m.StackInuse}
}

// handshake opens an authenticated WebSocket by hand on a plain TCP connection and reads its
// hello frame, leaving nothing but the connection on the client's side.
func handshake(t *testing.T, addr, token string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	key := make([]byte, 16)
	rand.Read(key)
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s, %s%s\r\n\r\n",
		addr, base64.StdEncoding.EncodeToString(key), proto.Subprotocol, proto.BearerProtocol, token)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		t.Fatalf("upgrade: %s", resp.Status)
	}
	// The hello: one unmasked text frame, short enough for a 16-bit length.
	head := make([]byte, 2)
	if _, err := io.ReadFull(br, head); err != nil {
		t.Fatal(err)
	}
	size := int(head[1] & 0x7f)
	if size == 126 {
		ext := make([]byte, 2)
		if _, err := io.ReadFull(br, ext); err != nil {
			t.Fatal(err)
		}
		size = int(ext[0])<<8 | int(ext[1])
	}
	payload := make([]byte, size)
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatal(err)
	}
	if head[0] != 0x81 || !bytes.HasPrefix(payload, []byte(`{"type":"hello"`)) {
		t.Fatalf("first frame %x %q, want a hello", head, payload)
	}
	if br.Buffered() > 0 {
		t.Fatalf("%d bytes after the hello", br.Buffered())
	}
	c.SetDeadline(time.Time{})
	return c
}
