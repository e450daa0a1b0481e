package connlimit_test

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"kaiwa/server/connlimit"
)

// acceptor serves a capped loopback listener: each admitted connection gets one byte "+" and is
// then held until the test releases it.
type acceptor struct {
	ln   net.Listener
	lim  *connlimit.Limiter
	held chan net.Conn
}

func startAcceptor(t *testing.T, cfg connlimit.Config) *acceptor {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := connlimit.New(cfg, slog.New(slog.DiscardHandler))
	a := &acceptor{ln: lim.Listener(inner), lim: lim, held: make(chan net.Conn, 1000)}
	go func() {
		for {
			c, err := a.ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("+"))
			a.held <- c
		}
	}()
	t.Cleanup(func() {
		a.ln.Close()
		for {
			select {
			case c := <-a.held:
				c.Close()
			default:
				return
			}
		}
	})
	return a
}

// dial connects from the loopback address from (127.0.0.x) and reports whether the server
// admitted the connection (it sent "+") or closed it at once.
func (a *acceptor) dial(t *testing.T, from string) (net.Conn, bool) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", a.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var b [1]byte
	_, err = c.Read(b[:])
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection from %s neither admitted nor closed within 30 s", from)
	}
	return c, err == nil && b[0] == '+'
}

// release closes one held connection on the server's side, as the HTTP server does when it is
// done with it.
func (a *acceptor) release(t *testing.T) {
	t.Helper()
	select {
	case c := <-a.held:
		c.Close()
		c.Close() // a second Close must not free a second place
	case <-time.After(30 * time.Second):
		t.Fatal("no held connection to release")
	}
}

func TestPerIPCap(t *testing.T) {
	t.Parallel()
	a := startAcceptor(t, connlimit.Config{PerIP: 3})
	for i := range 3 {
		if _, ok := a.dial(t, "127.0.0.1"); !ok {
			t.Fatalf("connection %d of 3 from one address refused", i+1)
		}
	}
	if _, ok := a.dial(t, "127.0.0.1"); ok {
		t.Fatal("a fourth connection from one address admitted over a cap of 3")
	}
	if _, ok := a.dial(t, "127.0.0.2"); !ok {
		t.Fatal("another address refused while the first was at its cap")
	}
	if got := a.lim.Refused(connlimit.ReasonPerIP); got != 1 {
		t.Fatalf("refused per IP: %d, want 1", got)
	}
	// The server closes the first address's oldest connection (twice): exactly one place frees.
	a.release(t)
	if _, ok := a.dial(t, "127.0.0.1"); !ok {
		t.Fatal("a place freed by Close was not given back")
	}
	if _, ok := a.dial(t, "127.0.0.1"); ok {
		t.Fatal("admitted over the cap after a double Close")
	}
}

func TestTotalCap(t *testing.T) {
	t.Parallel()
	a := startAcceptor(t, connlimit.Config{PerIP: 10, Total: 4})
	for i, from := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		if _, ok := a.dial(t, from); !ok {
			t.Fatalf("connection %d of 4 refused", i+1)
		}
	}
	if _, ok := a.dial(t, "127.0.0.5"); ok {
		t.Fatal("a fifth connection admitted over a total cap of 4")
	}
	if got := a.lim.Refused(connlimit.ReasonTotal); got != 1 {
		t.Fatalf("refused for the total: %d, want 1", got)
	}
	if got := a.lim.Open(); got != 4 {
		t.Fatalf("open: %d, want 4", got)
	}
	a.release(t)
	if _, ok := a.dial(t, "127.0.0.5"); !ok {
		t.Fatal("a place freed by Close was not given back")
	}
}

// TestNoCaps: the zero Config admits everything (benchmarks open thousands of sockets from a
// few addresses).
func TestNoCaps(t *testing.T) {
	t.Parallel()
	a := startAcceptor(t, connlimit.Config{})
	for i := range 200 {
		if _, ok := a.dial(t, "127.0.0.1"); !ok {
			t.Fatalf("connection %d refused with no caps", i+1)
		}
	}
}

// TestClientCloseKeepsPlace: a place is held until the server closes its side, not when the
// client goes away; the HTTP server notices the client leaving and closes, which frees it.
func TestClientCloseKeepsPlace(t *testing.T) {
	t.Parallel()
	a := startAcceptor(t, connlimit.Config{PerIP: 1})
	c, ok := a.dial(t, "127.0.0.1")
	if !ok {
		t.Fatal("first connection refused")
	}
	c.Close()
	if _, ok := a.dial(t, "127.0.0.1"); ok {
		t.Fatal("admitted over the cap while the server still held the first connection")
	}
	a.release(t)
	if _, ok := a.dial(t, "127.0.0.1"); !ok {
		t.Fatal("refused after the server closed the first connection")
	}
}

// TestNewcomers: while one address fills the total, addresses that hold few connections still
// get the newcomers' room.
func TestNewcomers(t *testing.T) {
	t.Parallel()
	a := startAcceptor(t, connlimit.Config{Total: 3, Newcomers: 3, NewcomerConns: 2})
	for i := range 3 {
		if _, ok := a.dial(t, "127.0.0.1"); !ok {
			t.Fatalf("connection %d of 3 refused", i+1)
		}
	}
	tests := []struct {
		from string
		ok   bool
	}{
		{"127.0.0.1", false}, // holds 3: the total applies
		{"127.0.0.2", true},  // holds none: a newcomer
		{"127.0.0.2", true},  // holds one
		{"127.0.0.2", false}, // holds two: no newcomer any more
		{"127.0.0.3", true},
		{"127.0.0.4", false}, // the newcomers' room is full
	}
	for i, tc := range tests {
		if _, ok := a.dial(t, tc.from); ok != tc.ok {
			t.Fatalf("step %d, from %s: admitted %v, want %v", i, tc.from, ok, tc.ok)
		}
	}
	if got := a.lim.Refused(connlimit.ReasonTotal); got != 3 {
		t.Fatalf("refused for the total: %d, want 3", got)
	}
}

// TestTCPMethods: an admitted TCP connection still offers the methods of *net.TCPConn that
// the HTTP server and the WebSocket hub ask for by interface.
func TestTCPMethods(t *testing.T) {
	t.Parallel()
	a := startAcceptor(t, connlimit.Config{PerIP: 1})
	a.dial(t, "127.0.0.1")
	var c net.Conn
	select {
	case c = <-a.held:
		a.held <- c // closed by the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("nothing admitted")
	}
	if _, ok := c.(interface{ CloseWrite() error }); !ok {
		t.Error("no CloseWrite: the HTTP server's lingering close would reset the client")
	}
	if _, ok := c.(interface{ SetWriteBuffer(int) error }); !ok {
		t.Error("no SetWriteBuffer: the hub could not size a socket's send buffer")
	}
	if _, ok := c.(io.ReaderFrom); !ok {
		t.Error("no ReadFrom: files would not be sent with sendfile")
	}
}

func TestForFileLimit(t *testing.T) {
	tests := []struct {
		name  string
		limit int
		want  connlimit.Config
	}{
		{"unknown", 0, connlimit.Config{PerIP: 320}},
		{"small", 100, connlimit.Config{PerIP: 320, Total: 50, Newcomers: 25, NewcomerConns: connlimit.NewcomerConns}},
		{"512", 512, connlimit.Config{PerIP: 320, Total: 384, Newcomers: 64, NewcomerConns: connlimit.NewcomerConns}},
		{"large", 1 << 20, connlimit.Config{PerIP: 320, Total: 1<<20 - connlimit.Reserve - connlimit.Newcomers,
			Newcomers: connlimit.Newcomers, NewcomerConns: connlimit.NewcomerConns}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := connlimit.ForFileLimit(320, tc.limit)
			if got != tc.want {
				t.Fatalf("ForFileLimit(320, %d) = %+v, want %+v", tc.limit, got, tc.want)
			}
			if tc.limit > 0 && got.Total+got.Newcomers > tc.limit-min(connlimit.Reserve, tc.limit/4) {
				t.Fatalf("%+v leaves too few of %d descriptors", got, tc.limit)
			}
		})
	}
}
