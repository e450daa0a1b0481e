package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// floorFrame is the size of one message of the loopback floor: about a Kaiwa message frame.
const floorFrame = 160

// loopbackFloor measures what this machine allows for the fan-out shape with nothing of Kaiwa
// in the way: plain TCP over loopback, no WebSocket, no JSON, no storage, both ends in this
// process. groups×members sockets, one reader goroutine each; publishes/s messages, each
// written to every socket of its group in turn by one goroutine, carrying its send time. It
// returns deliveries/s, their latency and the process's CPU time per delivery (both ends).
func loopbackFloor(ctx context.Context, groups, members int, publishes float64, warm, measure time.Duration) (float64, *histogram, time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, 0, err
	}
	defer ln.Close()
	n := groups * members
	writers := make([]net.Conn, 0, n)
	var readers sync.WaitGroup
	var lat histogram
	var delivered atomic.Int64
	defer func() {
		for _, c := range writers {
			c.Close()
		}
		readers.Wait()
	}()
	for range n {
		rc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return 0, nil, 0, err
		}
		wc, err := ln.Accept()
		if err != nil {
			rc.Close()
			return 0, nil, 0, err
		}
		if tcp, ok := wc.(*net.TCPConn); ok {
			tcp.SetWriteBuffer(128 << 10) // as the hub does
		}
		writers = append(writers, wc)
		readers.Add(1)
		go func() {
			defer readers.Done()
			defer rc.Close()
			r := bufio.NewReaderSize(rc, 4096)
			var buf [floorFrame]byte
			for {
				if _, err := io.ReadFull(r, buf[:]); err != nil {
					return
				}
				lat.record(time.Since(time.Unix(0, int64(binary.BigEndian.Uint64(buf[:8])))))
				delivered.Add(1)
			}
		}()
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var writing sync.WaitGroup
	writing.Add(1)
	go func() {
		defer writing.Done()
		var msg [floorFrame]byte
		paced(ctx, publishes, func(sent int) bool {
			g := sent % groups
			binary.BigEndian.PutUint64(msg[:8], uint64(time.Now().UnixNano()))
			for _, c := range writers[g*members : (g+1)*members] {
				if _, err := c.Write(msg[:]); err != nil {
					return false
				}
			}
			return true
		})
	}()
	time.Sleep(warm)
	lat.reset()
	before, meter := delivered.Load(), startCPU(selfCPU)
	time.Sleep(measure)
	got := delivered.Load() - before
	cpu := meter.perEvent(got)
	snapshot := lat.clone()
	cancel()
	writing.Wait()
	if got == 0 {
		return 0, nil, 0, fmt.Errorf("bench: loopback floor: nothing delivered")
	}
	return float64(got) / measure.Seconds(), snapshot, cpu, nil
}
