package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

// kaiwaProcess is `kaiwa serve` running as its own process, with its JSON log read line by line.
type kaiwaProcess struct {
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:PORT
	logs   chan map[string]any
	stderr *lockedBuffer // every line, for failure messages
	exited chan struct{} // closed once the process has ended; then err is its Wait error
	err    error
}

// startKaiwa starts `kaiwa serve` on db with a free port and waits until it serves. The process
// is killed when the test ends, if it still runs.
func startKaiwa(t *testing.T, db string, args ...string) *kaiwaProcess {
	t.Helper()
	return startServing(t, kaiwaCommand(context.Background(), nil, append([]string{"serve", "-addr", "127.0.0.1:0", "-log-format", "json", "-db", db}, args...)...))
}

// startServing starts cmd, a `kaiwa serve -log-format json`, and waits until it serves. The
// process is killed when the test ends, if it still runs.
func startServing(t *testing.T, cmd *exec.Cmd) *kaiwaProcess {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &kaiwaProcess{cmd: cmd, logs: make(chan map[string]any, 1000), stderr: &lockedBuffer{}, exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.stderr.Write(append(sc.Bytes(), '\n'))
			select {
			case p.logs <- decodeLogLine(sc.Bytes()):
			default: // nobody reads the log past startup in most tests
			}
		}
		close(p.logs)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.kill() })
	timeout := time.After(20 * time.Second)
	for {
		select {
		case line, ok := <-p.logs:
			if !ok {
				t.Fatalf("kaiwa serve ended before serving: %s", p.stderr)
			}
			if line["msg"] == "serving" {
				p.base = line["addr"].(string)
				return p
			}
		case <-timeout:
			t.Fatalf("kaiwa serve not serving within 20 s: %s", p.stderr)
		}
	}
}

// kill ends the process with SIGKILL, as a crash would, and waits for it.
func (p *kaiwaProcess) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// ackLog records what senders were told: (user, client id) → seq. An id acked twice must be
// acked with the same seq.
type ackLog struct {
	mu       sync.Mutex
	acked    map[string]uint64
	sent     map[string]string // key → user, for every id sent and not yet acked
	problems []string
}

func newAckLog() *ackLog {
	return &ackLog{acked: map[string]uint64{}, sent: map[string]string{}}
}

func ackKey(user, id string) string { return user + "\x00" + id }

func (l *ackLog) sending(user, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.acked[ackKey(user, id)]; !ok {
		l.sent[ackKey(user, id)] = id
	}
}

func (l *ackLog) ack(user, id string, seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := ackKey(user, id)
	if old, ok := l.acked[k]; ok && old != seq {
		l.problems = append(l.problems, fmt.Sprintf("%s %s acked as seq %d and as seq %d", user, id, old, seq))
	}
	l.acked[k] = seq
	delete(l.sent, k)
}

// unacked returns the ids user sent that were never acked.
func (l *ackLog) unacked(user string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for k, id := range l.sent {
		if strings.HasPrefix(k, user+"\x00") {
			ids = append(ids, id)
		}
	}
	return ids
}

// snapshot returns a copy of the acks so far.
func (l *ackLog) snapshot() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]uint64, len(l.acked))
	for k, v := range l.acked {
		m[k] = v
	}
	return m
}

// waitFor waits until at least n acks are recorded, for as long as a slow machine may need.
func (l *ackLog) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(l.snapshot()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d acks after 30 s, want %d", len(l.snapshot()), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sendLoop opens a socket as user, joins room, first resends the ids in retry, then sends new
// ones (prefix-N) at the server's rate limit, recording acks, until ctx ends or the socket dies.
func sendLoop(ctx context.Context, base, user, token, room, prefix string, retry []string, log *ackLog) error {
	dialCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(dialCtx, "ws"+strings.TrimPrefix(base, "http")+"/ws", &websocket.DialOptions{
		Subprotocols: []string{proto.Subprotocol, proto.BearerProtocol + token},
	})
	if err != nil {
		return err
	}
	defer ws.CloseNow()
	joined := make(chan struct{})
	readErr := make(chan error, 1)
	go func() {
		for {
			_, data, err := ws.Read(context.Background())
			if err != nil {
				readErr <- err
				return
			}
			for _, line := range bytes.Split(data, []byte("\n")) {
				var f proto.Frame
				if err := json.Unmarshal(line, &f); err != nil {
					readErr <- fmt.Errorf("bad frame %q: %w", line, err)
					return
				}
				switch f.Type {
				case proto.TypeJoined:
					close(joined)
				case proto.TypeAck:
					log.ack(user, f.ID, f.Seq)
				}
			}
		}
	}()
	write := func(v any) error {
		b, _ := json.Marshal(v)
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return stopped(ctx, ws.Write(wctx, websocket.MessageText, b))
	}
	if err := write(proto.Join{Type: proto.TypeJoin, Room: room}); err != nil {
		return err
	}
	select {
	case <-joined:
	case err := <-readErr:
		return stopped(ctx, err)
	case <-ctx.Done():
		return nil
	}
	// 20 sends a second per socket is the server's limit; stay just under it.
	tick := time.NewTicker(55 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		id := fmt.Sprintf("%s-%d", prefix, n)
		if n < len(retry) {
			id = retry[n]
		}
		log.sending(user, id)
		if err := write(proto.Send{Type: proto.TypeSend, Room: room, ID: id, Text: "message " + id}); err != nil {
			return err
		}
		select {
		case <-tick.C:
		case err := <-readErr:
			return stopped(ctx, err)
		case <-ctx.Done():
			return nil
		}
	}
}

// stopped is err unless the caller has stopped the loop: a write cut short by the stop, or the
// read failing on the socket that write closed, is not a failure.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// verifyHistory opens the database file and checks it: consistent, seqs 1..last without a gap
// or a duplicate, each (user, id) stored once, and every ack in acked present with its seq.
// It returns the number of messages.
func verifyHistory(t *testing.T, db, room string, acked map[string]uint64) int {
	t.Helper()
	st, err := store.Open(db)
	if err != nil {
		t.Fatalf("open %s: %v", db, err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		t.Fatalf("check %s: %v", db, err)
	}
	stored := map[string]uint64{}
	var cursor uint64
	for {
		msgs, more, err := st.Page(room, nil, &cursor, proto.PageMax)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.Seq != cursor+1 {
				t.Fatalf("seq %d follows seq %d: skipped or duplicated", m.Seq, cursor)
			}
			cursor = m.Seq
			k := ackKey(m.From, m.ID)
			if first, ok := stored[k]; ok {
				t.Errorf("%s %s stored twice: seq %d and %d", m.From, m.ID, first, m.Seq)
			}
			stored[k] = m.Seq
		}
		if !more {
			break
		}
	}
	r, err := st.Room(room)
	if err != nil {
		t.Fatal(err)
	}
	if r.LastSeq != cursor {
		t.Errorf("room's last seq %d, but history ends at %d", r.LastSeq, cursor)
	}
	for k, seq := range acked {
		if got, ok := stored[k]; !ok {
			t.Errorf("acked message %q (seq %d) is missing", k, seq)
		} else if got != seq {
			t.Errorf("acked message %q was acked as seq %d but stored as %d", k, seq, got)
		}
	}
	return len(stored)
}

// getStatus returns the status and body of a GET.
func getStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}
