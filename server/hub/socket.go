package hub

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"sync"
)

// The buffers of a socket. coder/websocket reads and writes through the bufio pair that the
// hijack hands it, and keeps that pair for the socket's life; net/http's are 4 KiB each, half
// of what an idle socket costs. Kaiwa's are small, for no more system calls:
//   - on Unix the socket is read through an idleReader, which waits for data holding no
//     buffer and reads into one of readBuffer bytes shared by all sockets, so the bufio.Reader
//     needs only its minimum; elsewhere the bufio.Reader has plainReadBuffer bytes, which
//     hold a client frame of the usual size (a join, a short send), a larger one being read
//     past the buffer, straight into the message;
//   - writeBuffer holds a frame header and the start of its payload; frameWriter below it
//     writes each frame to the connection in one call, from a buffer shared by all sockets.
const (
	readBuffer      = 4 << 10
	plainReadBuffer = 512
	minReadBuffer   = 16 // bufio's least
	writeBuffer     = 16 // at least the longest frame header (14 bytes)
	// maxPooledFrame is the largest frame buffer kept for reuse: a batch of frames is at most
	// maxBatchBytes, and a rarer larger buffer goes back to the collector.
	maxPooledFrame = maxBatchBytes + 64
)

// hijackCapture keeps the connection that websocket.Accept hijacks, so that a close can bound
// its write with a deadline, and hands coder/websocket the small buffers above instead of
// net/http's.
type hijackCapture struct {
	http.ResponseWriter
	conn net.Conn
}

func (hc *hijackCapture) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(hc.ResponseWriter).Hijack()
	hc.conn = c
	if err != nil {
		return c, brw, err
	}
	rc, size := c, plainReadBuffer
	if ir, ok := newIdleReader(c); ok {
		rc, size = ir, minReadBuffer
	}
	br := brw.Reader
	if br.Buffered() == 0 { // else the client sent frames before the answer: keep them there
		br = bufio.NewReaderSize(rc, size)
	}
	return rc, bufio.NewReadWriter(br, bufio.NewWriterSize(&frameWriter{conn: c}, writeBuffer)), nil
}

// frameWriter is what coder/websocket's bufio.Writer flushes to, and writes every WebSocket
// frame to the connection in one call.
//
// coder/websocket writes a frame into the bufio.Writer and flushes it (writeFrame), so a frame
// that fits in writeBuffer comes in one write, and a larger one in two: the full buffer (the
// header and the start of the payload), then the rest of the payload at once. frameWriter
// keeps the first, knowing from the header how long the frame is, and writes both together
// when the rest comes. Writes of any other shape, should there be one, pass through as they
// come, in order, from then on.
type frameWriter struct {
	conn    io.Writer
	head    [writeBuffer]byte
	held    int  // bytes of a frame kept in head
	rest    int  // bytes of that frame still to come
	through bool // a write came that frameWriter could not follow
}

// joinPool holds the buffers that join bytes for one write, shared by every socket: a frame's
// two writes (frameWriter) and the frames of one WebSocket message (conn.writeLoop).
var joinPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// putJoin returns a buffer to joinPool; one grown past the largest frame goes to the collector.
func putJoin(buf *[]byte) {
	if cap(*buf) <= maxPooledFrame {
		joinPool.Put(buf)
	}
}

func (w *frameWriter) Write(p []byte) (int, error) {
	if w.through {
		return w.conn.Write(p)
	}
	if w.held == 0 {
		switch size := frameSize(p); {
		case size > len(p) && len(p) == len(w.head):
			w.held, w.rest = copy(w.head[:], p), size-len(p)
			return len(p), nil
		case size != len(p):
			w.through = true
		}
		return w.conn.Write(p)
	}
	held := w.head[:w.held]
	w.held = 0
	if len(p) != w.rest {
		w.through = true
		if _, err := w.conn.Write(held); err != nil {
			return 0, err
		}
		return w.conn.Write(p)
	}
	buf := joinPool.Get().(*[]byte)
	*buf = append(append((*buf)[:0], held...), p...)
	_, err := w.conn.Write(*buf)
	putJoin(buf)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// frameSize returns the length of the WebSocket frame that p starts with, header included, or
// -1 when p does not hold the whole header.
func frameSize(p []byte) int {
	if len(p) < 2 {
		return -1
	}
	head, size := 2, uint64(p[1]&0x7f)
	switch size {
	case 126:
		if head += 2; len(p) < head {
			return -1
		}
		size = uint64(binary.BigEndian.Uint16(p[2:]))
	case 127:
		if head += 8; len(p) < head {
			return -1
		}
		size = binary.BigEndian.Uint64(p[2:])
	}
	if p[1]&0x80 != 0 { // masked: a client's frame
		head += 4
	}
	if size > 1<<40 {
		return -1
	}
	return head + int(size)
}
