package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	mathrand "math/rand/v2"
	"strings"
	"time"

	"github.com/coder/websocket"

	"kaiwa/shared/proto"
)

// Socket timings.
const (
	dialTimeout    = 15 * time.Second
	writeTimeout   = 10 * time.Second // one frame; a socket that cannot take it is dropped
	writeQueue     = 256              // frames queued for a socket's writer before it counts as stuck
	refreshTimeout = 15 * time.Second
)

// socket is one WebSocket of the session. The Run goroutine owns its fields; its reader,
// writer and keepalive goroutines touch only ws and the channels, and stop once done closes.
type socket struct {
	ws    *websocket.Conn
	out   chan []byte   // frames for the writer
	done  chan struct{} // closed by drop
	probe chan struct{} // capacity 1: check the socket now
	alive chan struct{} // capacity 1: a message was read (for probes that wait for one)

	dropped  bool
	joined   map[string]bool
	joins    []string            // rooms asked for and not answered yet, oldest first
	presence map[string][]string // the last presence of each room
	ready    bool                // hello received
	helloAt  time.Time
	acked    bool // an ack arrived on it
}

// frame is a frame from the server, decoded and as received.
type frame struct {
	proto.Frame
	raw json.RawMessage
}

type sockEvent struct {
	s      *socket
	frames []frame
	err    error // the socket ended
}

// connect opens a socket with the current token.
func (s *Session) connect() {
	if s.dialing || s.over || s.offline {
		return
	}
	s.dialing = true
	token := s.AccessToken()
	s.dialToken = token
	url := "ws" + strings.TrimPrefix(s.api.Base(), "http") + "/ws"
	ctx := s.runCtx
	go func() {
		ctx, cancel := context.WithTimeout(ctx, dialTimeout)
		ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
			Subprotocols: []string{proto.Subprotocol, proto.BearerProtocol + token},
		})
		cancel()
		s.do(func() { s.dialed(ws, err) })
		if err == nil {
			// The session has stopped if the command was dropped: do not leak the socket.
			s.mu.Lock()
			stopped := s.stopped
			s.mu.Unlock()
			if stopped {
				ws.CloseNow()
			}
		}
	}()
}

func (s *Session) dialed(ws *websocket.Conn, err error) {
	s.dialing = false
	if err != nil {
		s.logf("dial failed: %v", err)
		if !s.over && !s.offline {
			s.failed()
		}
		return
	}
	if s.over || s.offline || s.runCtx.Err() != nil {
		go ws.Close(websocket.StatusNormalClosure, "bye")
		return
	}
	ws.SetReadLimit(-1) // the server packs many frames into one message
	sk := &socket{
		ws: ws, out: make(chan []byte, writeQueue), done: make(chan struct{}),
		probe: make(chan struct{}, 1), alive: make(chan struct{}, 1),
		joined: map[string]bool{}, presence: map[string][]string{},
	}
	go s.read(sk)
	go sk.writeLoop()
	go sk.keepAlive(s.opts.PingEvery)
	if s.cur == nil {
		s.cur = sk
	} else {
		if s.next != nil {
			s.drop(s.next, websocket.StatusNormalClosure, "superseded")
		}
		s.next = sk
	}
	for room := range s.rooms {
		s.sendJoin(sk, room)
	}
	if s.next == sk && len(s.rooms) == 0 {
		s.promote()
	}
}

// write queues a frame for sk's writer. A socket whose queue is full is stuck: it is dropped,
// and the session goes on as when any socket ends.
func (s *Session) write(sk *socket, v any) {
	if sk.dropped {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("kaiwa: encode frame: %v", err))
	}
	select {
	case sk.out <- b:
	default:
		s.logf("socket stuck: %d frames unwritten", len(sk.out))
		s.drop(sk, 0, "")
	}
}

// drop stops using sk: it closes with code and reason (0: at once, without a close frame),
// and its goroutines stop. Its reader still reports the end to ended.
func (s *Session) drop(sk *socket, code websocket.StatusCode, reason string) {
	if sk.dropped {
		return
	}
	sk.dropped = true
	close(sk.done)
	if code == 0 {
		sk.ws.CloseNow()
	} else {
		go sk.ws.Close(code, reason)
	}
}

// writeLoop writes queued frames, each within writeTimeout; a write that fails or times out
// closes the socket, which its reader reports.
func (sk *socket) writeLoop() {
	for {
		select {
		case <-sk.done:
			return
		case b := <-sk.out:
			ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
			err := sk.ws.Write(ctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				sk.ws.CloseNow()
				return
			}
		}
	}
}

// keepAlive checks every interval, or when asked, that the peer still answers, within four
// fifths of the interval; a socket that does not is closed, which its reader reports.
func (sk *socket) keepAlive(every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-sk.done:
			return
		case <-tick.C:
		case <-sk.probe:
		}
		ctx, cancel := context.WithTimeout(context.Background(), every*4/5)
		err := sk.check(ctx)
		cancel()
		if err != nil {
			sk.ws.CloseNow()
			return
		}
	}
}

// probeNow asks the keepalive goroutine for a check at once.
func (sk *socket) probeNow() {
	select {
	case sk.probe <- struct{}{}:
	default:
	}
}

func (s *Session) read(sk *socket) {
	for {
		_, data, err := sk.ws.Read(s.runCtx)
		if err != nil {
			select {
			case s.inbox <- sockEvent{s: sk, err: err}:
			case <-s.runCtx.Done():
			}
			return
		}
		select {
		case sk.alive <- struct{}{}:
		default:
		}
		var frames []frame
		for line := range bytes.SplitSeq(data, []byte{'\n'}) {
			if len(line) == 0 {
				continue
			}
			f := frame{raw: line}
			if err := json.Unmarshal(line, &f.Frame); err != nil {
				// A frame of a newer protocol may not fit proto.Frame: pass it on by its type.
				var typ struct{ Type string }
				if json.Unmarshal(line, &typ) != nil || typ.Type == "" {
					s.logf("bad frame from server: %v", err)
					continue
				}
				f.Frame = proto.Frame{Type: typ.Type}
			}
			frames = append(frames, f)
		}
		select {
		case s.inbox <- sockEvent{s: sk, frames: frames}:
		case <-s.runCtx.Done():
			return
		}
	}
}

// closeStatus returns the close code of a socket's end, or -1.
func closeStatus(err error) int { return int(websocket.CloseStatus(err)) }

// randN returns a random duration in [0, n).
func randN(n time.Duration) time.Duration {
	if n <= 0 {
		return 0
	}
	return mathrand.N(n)
}

// refreshFlight is one refresh in progress, shared by everyone who needs a new token meanwhile.
type refreshFlight struct {
	done chan struct{}
	tb   proto.TokenBody // set before done closes
	err  error
}

// startRefresh starts a refresh, or returns the one in flight. Its outcome becomes the
// session's token and reaches the Run goroutine through refreshed.
func (s *Session) startRefresh() *refreshFlight {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.flight != nil {
		return s.flight
	}
	f := &refreshFlight{done: make(chan struct{})}
	s.flight = f
	refresh := s.api.Refresh
	if s.opts.Refresh != nil {
		refresh = s.opts.Refresh
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
		tb, err := refresh(ctx)
		cancel()
		s.mu.Lock()
		f.tb, f.err = tb, err
		if err == nil {
			s.token, s.tokenAt = tb, time.Now()
		}
		s.flight = nil
		s.mu.Unlock()
		close(f.done)
		s.do(func() { s.refreshed(tb, err) })
	}()
	return f
}
