//go:build !js

package client_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/http"
	"net/http/cookiejar"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// register signs a new user up at base and returns an API holding its refresh cookie.
func register(t *testing.T, base, name string) (*client.API, proto.TokenBody) {
	t.Helper()
	api := client.NewAPI(base, nil)
	tb, err := api.Register(context.Background(), name, "password-"+name)
	if err != nil {
		t.Fatal(err)
	}
	return api, tb
}

// recorder keeps every event read from a channel.
type recorder struct {
	mu     sync.Mutex
	events []client.Event
}

func record(ctx context.Context, ch <-chan client.Event) *recorder {
	r := &recorder{}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-ch:
				if !ok {
					return
				}
				r.mu.Lock()
				r.events = append(r.events, ev)
				r.mu.Unlock()
			}
		}
	}()
	return r
}

// count returns how many events so far match.
func (r *recorder) count(match func(client.Event) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.events {
		if match(ev) {
			n++
		}
	}
	return n
}

// snapshot returns the events so far.
func (r *recorder) snapshot() []client.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]client.Event(nil), r.events...)
}

// waitFor polls cond until it holds, failing the test after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 30 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitClosed fails the test when ch is not closed within 30 s: a call that hangs.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("still blocked after 30 s: %s", what)
	}
}

func isState(st client.State) func(client.Event) bool {
	return func(ev client.Event) bool { return ev.Kind == client.EventState && ev.State == st }
}

// proxy is a TCP proxy on loopback in front of a server. It can freeze (stop forwarding in
// both directions without closing anything, like a network that went away) and can cut every
// WebSocket right after the server's hello. It counts the hellos it forwarded.
type proxy struct {
	ln     net.Listener
	target string

	cutAfterHello atomic.Bool
	hellos        atomic.Int64

	stopped chan struct{} // closed when the test ends
	// stuck counts the connections frozen for good by freezeExisting: those accepted first.
	stuck    atomic.Int64
	accepted int64 // owned by accept

	mu      sync.Mutex
	thawed  chan struct{} // closed while not frozen
	conns   []net.Conn
	rewrite func(msg []byte) []byte
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, thawed: make(chan struct{}), stopped: make(chan struct{})}
	close(p.thawed)
	go p.accept()
	t.Cleanup(func() {
		close(p.stopped)
		ln.Close()
		p.thaw()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	return p
}

// URL is the proxy's base URL.
func (p *proxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.thawed:
		p.thawed = make(chan struct{})
	default:
	}
}

func (p *proxy) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.thawed:
	default:
		close(p.thawed)
	}
}

// freezeExisting freezes the connections open now, for good, while new ones flow: a socket
// whose path died while a new one can be opened.
func (p *proxy) freezeExisting() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stuck.Store(int64(len(p.conns) / 2))
}

// hold waits while the proxy is frozen; a connection frozen for good waits until the test ends
// and never reads again.
func (p *proxy) hold(idx int64) {
	if idx < p.stuck.Load() {
		<-p.stopped
		return
	}
	p.waitThawed()
}

func (p *proxy) waitThawed() {
	p.mu.Lock()
	ch := p.thawed
	p.mu.Unlock()
	<-ch
}

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		idx := int64(len(p.conns)/2 - 1)
		p.mu.Unlock()
		go p.pipe(c, s, false, idx)
		go p.pipe(s, c, true, idx)
	}
}

// pipe copies from src to dst, holding data back while frozen.
func (p *proxy) pipe(src, dst net.Conn, fromServer bool, idx int64) {
	defer dst.Close()
	defer src.Close()
	if fromServer {
		p.pipeDown(src, dst, idx)
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.hold(idx)
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// pipeDown copies the server's answer to the client: the HTTP response, then WebSocket frames
// one by one, so that it can count hellos, cut after one, and rewrite text messages.
func (p *proxy) pipeDown(src, dst net.Conn, idx int64) {
	var pending []byte
	upgraded := false
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		pending = append(pending, buf[:n]...)
		if !upgraded {
			i := bytes.Index(pending, []byte("\r\n\r\n"))
			if i >= 0 {
				p.hold(idx)
				if _, err := dst.Write(pending[:i+4]); err != nil {
					return
				}
				upgraded = bytes.HasPrefix(pending, []byte("HTTP/1.1 101"))
				pending = pending[i+4:]
				if !upgraded {
					p.passThrough(src, dst, pending, idx)
					return
				}
			}
		}
		for upgraded {
			frame, payload, rest, ok := nextFrame(pending)
			if !ok {
				break
			}
			pending = rest
			hello := false
			if frame[0] == 0x81 { // one text message in one frame
				hello = bytes.Contains(payload, []byte(`"type":"hello"`))
				p.mu.Lock()
				rewrite := p.rewrite
				p.mu.Unlock()
				if rewrite != nil {
					frame = textFrame(rewrite(payload))
				}
			}
			p.hold(idx)
			if _, err := dst.Write(frame); err != nil {
				return
			}
			if hello {
				p.hellos.Add(1)
				if p.cutAfterHello.Load() {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) passThrough(src, dst net.Conn, pending []byte, idx int64) {
	p.hold(idx)
	if _, err := dst.Write(pending); err != nil {
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.hold(idx)
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// nextFrame splits the first whole WebSocket frame (as a server sends it: unmasked) off b.
func nextFrame(b []byte) (frame, payload, rest []byte, ok bool) {
	if len(b) < 2 {
		return nil, nil, b, false
	}
	n, h := uint64(b[1]&0x7f), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return nil, nil, b, false
		}
		n, h = uint64(binary.BigEndian.Uint16(b[2:4])), 4
	case 127:
		if len(b) < 10 {
			return nil, nil, b, false
		}
		n, h = binary.BigEndian.Uint64(b[2:10]), 10
	}
	if uint64(len(b)-h) < n {
		return nil, nil, b, false
	}
	end := h + int(n)
	return b[:end:end], b[h:end], b[end:], true
}

// textFrame encodes one unmasked text frame.
func textFrame(payload []byte) []byte {
	var f []byte
	switch n := len(payload); {
	case n < 126:
		f = []byte{0x81, byte(n)}
	case n < 1<<16:
		f = binary.BigEndian.AppendUint16([]byte{0x81, 126}, uint16(n))
	default:
		f = binary.BigEndian.AppendUint64([]byte{0x81, 127}, uint64(n))
	}
	return append(f, payload...)
}

// setRewrite makes the proxy pass every text message from the server through f (nil: none).
func (p *proxy) setRewrite(f func(msg []byte) []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rewrite = f
}

// api returns an API whose base URL is the proxy, so that the session's sockets go through
// it, while its HTTP calls go straight to the server.
func (p *proxy) api() *client.API {
	jar, _ := cookiejar.New(nil)
	direct := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, p.target)
	}}
	return client.NewAPI(p.URL(), &http.Client{Jar: jar, Transport: direct})
}
