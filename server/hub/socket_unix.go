//go:build unix

package hub

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// idleReader reads a socket without holding a buffer while it waits: it waits for the socket
// to be readable through the runtime's poller, and only then takes a buffer from readPool to
// read into. What the caller does not take at once waits in that buffer, and the buffer goes
// back to the pool once it is read. An idle socket, parked in its read, holds none.
//
// Its Read is called by one goroutine at a time (the socket's reader); Close and the deadlines
// are the connection's.
type idleReader struct {
	net.Conn
	raw     syscall.RawConn
	buf     *[]byte // borrowed from readPool while bytes wait in it
	pending []byte  // the bytes of buf not read yet
}

// readPool holds the buffers sockets read into, shared by every socket.
var readPool = sync.Pool{New: func() any { b := make([]byte, readBuffer); return &b }}

// newIdleReader returns c read through an idleReader, or false when c gives no access to its
// descriptor (a TLS connection, which reads through buffers of its own).
func newIdleReader(c net.Conn) (net.Conn, bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, false
	}
	return &idleReader{Conn: c, raw: raw}, true
}

func (r *idleReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(r.pending) == 0 {
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.pending)
	if r.pending = r.pending[n:]; len(r.pending) == 0 {
		readPool.Put(r.buf)
		r.buf, r.pending = nil, nil
	}
	return n, nil
}

// fill waits until the socket is readable and reads what it has into a buffer from readPool.
func (r *idleReader) fill() error {
	var n int
	var rerr error
	err := r.raw.Read(func(fd uintptr) bool {
		buf := readPool.Get().(*[]byte)
		for {
			n, rerr = syscall.Read(int(fd), *buf)
			if rerr != syscall.EINTR {
				break
			}
		}
		if rerr == syscall.EAGAIN {
			readPool.Put(buf)
			return false // not readable yet: wait, holding nothing
		}
		r.buf = buf
		return true
	})
	switch {
	case err != nil:
		r.release()
		return &net.OpError{Op: "read", Net: "tcp", Source: r.LocalAddr(), Addr: r.RemoteAddr(), Err: err}
	case rerr != nil:
		r.release()
		return &net.OpError{Op: "read", Net: "tcp", Source: r.LocalAddr(), Addr: r.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
	case n <= 0:
		r.release()
		return io.EOF
	}
	r.pending = (*r.buf)[:n]
	return nil
}

func (r *idleReader) release() {
	if r.buf != nil {
		readPool.Put(r.buf)
		r.buf, r.pending = nil, nil
	}
}
