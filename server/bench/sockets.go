package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// users registers n users named prefix0..n-1 and returns their access tokens. The server
// hashes passwords one or two at a time, so this is the slow part of a large setup.
func users(ctx context.Context, base, prefix string, n int) ([]string, error) {
	tokens := make([]string, n)
	err := parallel(ctx, n, 8, func(i int) error {
		tb, err := client.NewAPI(base, nil).Register(ctx, prefix+strconv.Itoa(i), "bench-password-"+strconv.Itoa(i))
		tokens[i] = tb.AccessToken
		return err
	})
	return tokens, err
}

// parallel runs f(0..n-1) on at most workers goroutines and returns the first error.
func parallel(ctx context.Context, n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// member is one benchmark socket. Its reader hands every frame line to onLine.
type member struct {
	ws *websocket.Conn
	mu sync.Mutex // serialises writes
}

func dial(ctx context.Context, base, token string) (*member, error) {
	return dialWith(ctx, nil, base, token)
}

// dialWith is dial through client (nil: http.DefaultClient).
func dialWith(ctx context.Context, client *http.Client, base, token string) (*member, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws", &websocket.DialOptions{
		Subprotocols: []string{proto.Subprotocol, proto.BearerProtocol + token},
		HTTPClient:   client,
	})
	if err != nil {
		return nil, fmt.Errorf("bench: dial: %w", err)
	}
	ws.SetReadLimit(1 << 20)
	return &member{ws: ws}, nil
}

// read reads until the socket ends or ctx does, calling onLine for each frame (one JSON object
// per line). It reuses one buffer: onLine must not keep the line.
//
// The reads themselves take no cancellable context: coder/websocket arms a context watch for
// every read that has one, which made the load generator spend more per message than the
// server. ctx ending closes the socket instead, and that ends the read.
func (m *member) read(ctx context.Context, onLine func(line []byte)) error {
	defer context.AfterFunc(ctx, m.close)()
	var buf bytes.Buffer
	for {
		_, r, err := m.ws.Reader(context.Background())
		if err != nil {
			return err
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return err
		}
		data := buf.Bytes()
		for len(data) > 0 {
			line := data
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				line, data = data[:i], data[i+1:]
			} else {
				data = nil
			}
			onLine(line)
		}
	}
}

func (m *member) send(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.write(ctx, b)
}

// sendStamped sends the frame that frame makes of the send time's stamp, taken once the socket
// is free to write: the time a send waits for a core of this process, or behind another send
// on its socket, is the load generator's, and the latency measured is from the write on.
func (m *member) sendStamped(ctx context.Context, frame func(text string) any) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, err := json.Marshal(frame(stamp(time.Now())))
	if err != nil {
		return err
	}
	return m.write(ctx, b)
}

// write writes one message. Callers hold m.mu.
func (m *member) write(ctx context.Context, b []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return m.ws.Write(ctx, websocket.MessageText, b)
}

func (m *member) close() { m.ws.CloseNow() }

// frameType returns the "type" of a frame line without decoding it: Kaiwa writes it first.
func frameType(line []byte) string {
	const prefix = `{"type":"`
	if !bytes.HasPrefix(line, []byte(prefix)) {
		return ""
	}
	rest := line[len(prefix):]
	if i := bytes.IndexByte(rest, '"'); i >= 0 {
		return string(rest[:i])
	}
	return ""
}

// stampPrefix starts the text of every benchmark message: "b:" then the send time in Unix
// nanoseconds.
const stampPrefix = "b:"

// sentAt finds the send time in a message frame's text.
func sentAt(line []byte) (time.Time, bool) {
	const key = `"text":"` + stampPrefix
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return time.Time{}, false
	}
	rest := line[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return time.Time{}, false
	}
	var ns int64
	for _, d := range rest[:j] {
		if d < '0' || d > '9' {
			return time.Time{}, false
		}
		ns = ns*10 + int64(d-'0')
	}
	return time.Unix(0, ns), j > 0
}

func stamp(t time.Time) string { return stampPrefix + strconv.FormatInt(t.UnixNano(), 10) }

// jsonField returns the raw value of a top-level string field of a frame line.
func jsonField(line []byte, name string) string {
	key := []byte(`"` + name + `":"`)
	i := bytes.Index(line, key)
	if i < 0 {
		return ""
	}
	rest := line[i+len(key):]
	if j := bytes.IndexByte(rest, '"'); j >= 0 {
		return string(rest[:j])
	}
	return ""
}
