//go:build !js

package client_test

import (
	"bytes"
	"context"
	"net"
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

	mu     sync.Mutex
	thawed chan struct{} // closed while not frozen
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, thawed: make(chan struct{})}
	close(p.thawed)
	go p.accept()
	t.Cleanup(func() {
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
		p.mu.Unlock()
		go p.pipe(c, s, false)
		go p.pipe(s, c, true)
	}
}

// pipe copies from src to dst, holding data back while frozen.
func (p *proxy) pipe(src, dst net.Conn, fromServer bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.waitThawed()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			if fromServer && bytes.Contains(buf[:n], []byte(`"type":"hello"`)) {
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
