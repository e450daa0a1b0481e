package server_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"kaiwa/server"
	"kaiwa/server/auth"
	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

// mintUsers creates n users named prefix + number directly in the store, each with a session,
// and returns their access tokens: the way to have hundreds of distinct users without paying
// for hundreds of password hashes. The tokens are signed like the server's own.
func mintUsers(t *testing.T, st testStore, prefix string, n int) []string {
	t.Helper()
	tokens := make([]string, n)
	now := time.Now()
	for i := range n {
		name := fmt.Sprintf("%s%04d", prefix, i)
		u, err := st.CreateUser(name, "not-a-hash", false)
		if err != nil {
			t.Fatal(err)
		}
		sid := fmt.Sprintf("sid-%s", name)
		if err := st.CreateSession(store.Session{ID: sid, UserID: u.ID, CreatedAt: now.UTC(), ExpiresAt: now.Add(time.Hour).UTC(), Current: [][]byte{{1}}}); err != nil {
			t.Fatal(err)
		}
		claims := auth.Claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: auth.Issuer, Audience: jwt.ClaimStrings{auth.Audience}, Subject: u.ID,
				IssuedAt: jwt.NewNumericDate(now.Truncate(time.Second)), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
				ID: "jti-" + name,
			},
			Name: name, SID: sid,
		}
		tokens[i], err = jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(st.SigningKey())
		if err != nil {
			t.Fatal(err)
		}
	}
	return tokens
}

// watcher is a lean reading member: it checks that a room's messages come in order without gaps
// and counts what it receives, without decoding whole frames (hundreds of them share the
// machine with the server).
type watcher struct {
	ws       *websocket.Conn
	joined   chan struct{}
	done     chan struct{} // closed when the socket ends
	code     atomic.Int32  // close code, once done
	bytes    atomic.Int64
	messages atomic.Int64 // message frames, all in order
	lastSeq  atomic.Uint64
	badOrder atomic.Value  // string: the first order violation
	presence atomic.Int64  // presence frames
	limited  atomic.Int64  // rate_limited errors
	joins    atomic.Int64  // joined frames
	pause    time.Duration // how long to wait after each message read: a slow link
	mu       sync.Mutex
	online   string // the "online" list of the last presence frame, raw
}

// watch opens a socket with token, joins room (without after) and reads until the socket ends,
// pausing after each WebSocket message read (0: none).
func (ts *testServer) watch(t *testing.T, token, room string, pause time.Duration) *watcher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/ws", &websocket.DialOptions{
		Subprotocols: []string{proto.Subprotocol, proto.BearerProtocol + token},
	})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(1 << 20)
	w := &watcher{ws: ws, joined: make(chan struct{}, 1), done: make(chan struct{}), pause: pause}
	t.Cleanup(func() { ws.CloseNow() })
	go w.read()
	if room != "" {
		if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"`+room+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func (w *watcher) read() {
	defer close(w.done)
	var buf bytes.Buffer
	for {
		_, r, err := w.ws.Reader(context.Background())
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			w.code.Store(int32(websocket.CloseStatus(err)))
			return
		}
		w.bytes.Add(int64(buf.Len()))
		for line := range bytes.SplitSeq(buf.Bytes(), []byte{'\n'}) {
			w.line(line)
		}
		if w.pause > 0 {
			time.Sleep(w.pause)
		}
	}
}

func (w *watcher) line(line []byte) {
	field := func(name string) []byte {
		key := []byte(`"` + name + `":`)
		i := bytes.Index(line, key)
		if i < 0 {
			return nil
		}
		rest := line[i+len(key):]
		if j := bytes.IndexAny(rest, ",}"); j >= 0 && name != "online" {
			return rest[:j]
		}
		if j := bytes.IndexByte(rest, ']'); j >= 0 {
			return rest[:j+1]
		}
		return rest
	}
	switch {
	case bytes.HasPrefix(line, []byte(`{"type":"message"`)):
		seq, _ := strconv.ParseUint(string(field("seq")), 10, 64)
		if last := w.lastSeq.Load(); last != 0 && seq != last+1 && w.badOrder.Load() == nil {
			w.badOrder.Store(fmt.Sprintf("seq %d after %d", seq, last))
		}
		w.lastSeq.Store(seq)
		w.messages.Add(1)
	case bytes.HasPrefix(line, []byte(`{"type":"presence"`)):
		w.presence.Add(1)
		w.mu.Lock()
		w.online = string(field("online"))
		w.mu.Unlock()
	case bytes.HasPrefix(line, []byte(`{"type":"joined"`)):
		w.joins.Add(1)
		select {
		case w.joined <- struct{}{}:
		default:
		}
	case bytes.HasPrefix(line, []byte(`{"type":"error"`)) && bytes.Contains(line, []byte(`"code":"rate_limited"`)):
		w.limited.Add(1)
	}
}

func (w *watcher) lastOnline() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.online
}

func (w *watcher) closed() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// waitJoined waits for the watcher's joined frame.
func (w *watcher) waitJoined(t *testing.T) {
	t.Helper()
	select {
	case <-w.joined:
	case <-w.done:
		t.Fatalf("socket closed (%d) before its join was answered", w.code.Load())
	case <-time.After(30 * time.Second):
		t.Fatal("no joined frame within 30 s")
	}
}

// closedWith counts the watchers that have ended, and those of them closed with 4008.
func closedWith(ws []*watcher) (closed, slow int) {
	for _, w := range ws {
		if w.closed() {
			closed++
			if w.code.Load() == proto.CloseSlowConsumer {
				slow++
			}
		}
	}
	return closed, slow
}

// longName pads a user prefix to 28 characters: presence frames of many long names are what
// made presence expensive.
func longName(prefix string) string { return prefix + strings.Repeat("x", 28-len(prefix)) }

// TestJoinLeaveFlood: one socket alternating join and leave as fast as it can in a room of
// 300 reading members. Join and leave together are limited to 10 a second per connection
// after a burst of 200, with rate_limited errors; no member is closed.
func TestJoinLeaveFlood(t *testing.T) {
	ts := newTestServer(t, server.Config{})
	const members = 300
	tokens := mintUsers(t, ts.st, longName("m"), members+1)
	ws := make([]*watcher, members)
	for i := range ws {
		ws[i] = ts.watch(t, tokens[i], "general", 0)
	}
	for _, w := range ws {
		w.waitJoined(t)
	}
	attacker := ts.watch(t, tokens[members], "", 0)
	ctx := context.Background()
	start := time.Now()
	pairs := 0
	for ; pairs < 5000 && time.Since(start) < 2*time.Second; pairs++ {
		if attacker.ws.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"general"}`)) != nil ||
			attacker.ws.Write(ctx, websocket.MessageText, []byte(`{"type":"leave","room":"general"}`)) != nil {
			break
		}
	}
	elapsed := time.Since(start)
	// Let the server work through what was sent: its answers end with the last frames' errors.
	quiet(t, func() int64 { return attacker.joins.Load() + attacker.limited.Load() })
	var pushed, presence int64
	for _, w := range ws {
		pushed += w.bytes.Load()
		presence += w.presence.Load()
	}
	closed, slow := closedWith(ws)
	t.Logf("%d join/leave pairs sent in %v: %d joins accepted, %d rate_limited; %d of %d members closed (%d with 4008), %.1f MB pushed to members, %d presence frames",
		pairs, elapsed.Round(time.Millisecond), attacker.joins.Load(), attacker.limited.Load(), closed, members, slow, float64(pushed)/1e6, presence)
	if closed > 0 {
		t.Errorf("%d members closed (%d with 4008)", closed, slow)
	}
	// Accepted joins and leaves: at most the burst of 200 and 10 a second since.
	if accepted := 2 * attacker.joins.Load(); accepted > 200+int64(10*time.Since(start).Seconds())+2 || attacker.limited.Load() == 0 {
		t.Errorf("%d joins and leaves accepted, %d rate_limited: the limit did not hold", accepted, attacker.limited.Load())
	}
	if attacker.closed() {
		t.Errorf("the flooding socket was closed (%d); it should get rate_limited errors", attacker.code.Load())
	}
}

// quiet waits until count stops changing for a second (at most 60 s).
func quiet(t *testing.T, count func() int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last := count()
	for time.Now().Before(deadline) {
		time.Sleep(time.Second)
		if now := count(); now == last {
			return
		} else {
			last = now
		}
	}
}

// TestPresenceCoalesced: 300 users joining 10 ms apart. Presence is coalesced to at most one
// frame per room per second, so each member gets a few frames, not one per later join; in the
// end every member sees the full, sorted list.
func TestPresenceCoalesced(t *testing.T) {
	ts := newTestServer(t, server.Config{})
	const members = 300
	tokens := mintUsers(t, ts.st, longName("p"), members)
	ws := make([]*watcher, members)
	joinedAt := make([]time.Time, members)
	start := time.Now()
	for i := range ws {
		ws[i] = ts.watch(t, tokens[i], "general", 0)
		joinedAt[i] = time.Now()
		time.Sleep(10 * time.Millisecond)
	}
	want := `["` + fmt.Sprintf("%s%04d", longName("p"), 0)
	for _, w := range ws {
		w.waitJoined(t)
	}
	// Every member ends with the full list.
	deadline := time.Now().Add(30 * time.Second)
	for _, w := range ws {
		for strings.Count(w.lastOnline(), `"`)/2 != members || !strings.HasPrefix(w.lastOnline(), want) {
			if time.Now().After(deadline) || w.closed() {
				t.Fatalf("a member's last presence lists %d names (closed %t)", strings.Count(w.lastOnline(), `"`)/2, w.closed())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	elapsed := time.Since(start)
	var total, most int64
	over := -1
	for i, w := range ws {
		n := w.presence.Load()
		total += n
		most = max(most, n)
		// Its own first frame, then at most one a second while it was a member, plus one.
		if limit := 2 + int64(time.Since(joinedAt[i]).Seconds()+1); n > limit && over < 0 {
			over = i
		}
	}
	closed, slow := closedWith(ws)
	t.Logf("%d users joined 10 ms apart over %v: %d presence frames in all, at most %d to one member; %d closed (%d with 4008)",
		members, elapsed.Round(time.Millisecond), total, most, closed, slow)
	if over >= 0 {
		t.Errorf("member %d got %d presence frames in %v: more than one a second", over, ws[over].presence.Load(), time.Since(joinedAt[over]).Round(time.Millisecond))
	}
	if closed > 0 {
		t.Errorf("%d members closed", closed)
	}
	// The list is sorted and unique.
	names := strings.Split(strings.Trim(ws[0].lastOnline(), "[]"), ",")
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Fatalf("presence not sorted and unique at %d: %s, %s", i, names[i-1], names[i])
		}
	}
}

// TestPresenceMassDrop: 475 of 500 members drop at once. The 25 that remain and keep
// reading are not closed (presence never causes 4008) and soon see only themselves online.
func TestPresenceMassDrop(t *testing.T) {
	ts := newTestServer(t, server.Config{})
	const members, stay = 500, 25
	tokens := mintUsers(t, ts.st, longName("d"), members)
	ws := make([]*watcher, members)
	for i := range ws {
		ws[i] = ts.watch(t, tokens[i], "general", 0)
	}
	for _, w := range ws {
		w.waitJoined(t)
	}
	// Wait for presence to settle before the drop.
	deadline := time.Now().Add(60 * time.Second)
	for strings.Count(ws[0].lastOnline(), `"`)/2 != members && time.Now().Before(deadline) && !ws[0].closed() {
		time.Sleep(20 * time.Millisecond)
	}
	before := make([]int64, stay)
	for i := range stay {
		before[i] = ws[i].presence.Load()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, w := range ws[stay:] {
		wg.Add(1)
		go func() { defer wg.Done(); w.ws.CloseNow() }()
	}
	wg.Wait()
	dropTook := time.Since(start)
	deadline = time.Now().Add(30 * time.Second)
	for _, w := range ws[:stay] {
		for strings.Count(w.lastOnline(), `"`)/2 != stay && !w.closed() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	var frames int64
	for i, w := range ws[:stay] {
		frames += w.presence.Load() - before[i]
	}
	closed, slow := closedWith(ws[:stay])
	t.Logf("%d of %d members dropped in %v: the %d remaining got %d presence frames in all; %d of them closed (%d with 4008)",
		members-stay, members, dropTook.Round(time.Millisecond), stay, frames, closed, slow)
	if closed > 0 {
		t.Fatalf("%d remaining members closed (%d with 4008)", closed, slow)
	}
	for _, w := range ws[:stay] {
		if n := strings.Count(w.lastOnline(), `"`) / 2; n != stay {
			t.Fatalf("a remaining member's last presence lists %d names, want %d", n, stay)
		}
	}
	waitMetric(t, ts.URL, "kaiwa_queue_overflows_total", 0)
}

// TestBurstKeepsReaders: 40 of 100 members each send their burst of 40 messages of 4 KB at
// once, 6.5 MB for each member, more than a slow link takes in the time. Every member keeps
// reading, pausing a millisecond after each WebSocket message; none is closed, and each gets
// all 1 600 messages in order without a gap.
func TestBurstKeepsReaders(t *testing.T) {
	ts := newTestServer(t, server.Config{})
	const members, senders, burst = 100, 40, 40
	tokens := mintUsers(t, ts.st, "b", members)
	ws := make([]*watcher, members)
	for i := range ws {
		ws[i] = ts.watch(t, tokens[i], "general", time.Millisecond)
	}
	text := strings.Repeat("é", 2000)
	for _, w := range ws {
		w.waitJoined(t)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range burst {
				ws[i].ws.Write(context.Background(), websocket.MessageText,
					[]byte(`{"type":"send","room":"general","id":"b`+strconv.Itoa(i)+`-`+strconv.Itoa(j)+`","text":"`+text+`"}`))
			}
		}()
	}
	wg.Wait()
	const total = senders * burst
	deadline := time.Now().Add(120 * time.Second)
	for _, w := range ws {
		for w.messages.Load() < total && !w.closed() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	took := time.Since(start)
	closed, slow := closedWith(ws)
	short := 0
	for _, w := range ws {
		if w.messages.Load() != total {
			short++
		}
		if bad := w.badOrder.Load(); bad != nil {
			t.Errorf("a member got %s", bad)
		}
	}
	t.Logf("%d messages of 4 KB in a burst to %d slowly reading members: %d closed (%d with 4008), %d without every message, in %v",
		total, members, closed, slow, short, took.Round(time.Millisecond))
	if closed > 0 || short > 0 {
		t.Fatalf("%d members closed (%d with 4008), %d without every message", closed, slow, short)
	}
}

// TestNonReaderClosed: a socket that joins a room with a long history from the start and never
// reads is closed with 4008 (counted in kaiwa_queue_overflows_total) while another member goes
// on sending and receiving.
func TestNonReaderClosed(t *testing.T) {
	ts := newTestServer(t, server.Config{})
	reqs := make([]store.AppendRequest, 3000)
	for i := range reqs {
		reqs[i] = store.AppendRequest{Room: "general", UserID: "0", From: "history", ClientID: strconv.Itoa(i), Text: strings.Repeat("h", 1000)}
	}
	if _, err := ts.st.AppendBatch(reqs); err != nil {
		t.Fatal(err)
	}
	tokens := mintUsers(t, ts.st, "n", 2)
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC() // pools are emptied over two cycles
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	// The other member first: what it allocates is there both when the stalled socket is
	// measured and after it is gone.
	live := ts.connect(t, tokens[1])
	live.write(proto.Join{Type: proto.TypeJoin, Room: "general"})
	live.next(proto.TypeJoined)
	scrape(t, ts.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stalled, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/ws", &websocket.DialOptions{
		Subprotocols: []string{proto.Subprotocol, proto.BearerProtocol + tokens[0]},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.CloseNow()
	if err := stalled.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"general","after":0}`)); err != nil {
		t.Fatal(err)
	}
	// Once its buffers are full, the stalled socket holds what the heap of this process (where
	// the server runs) loses when it is gone; kernel buffers are not counted.
	time.Sleep(3 * time.Second)
	heapStalled := heap()
	start := time.Now()
	for i := 0; ; i++ {
		live.write(proto.Send{Type: proto.TypeSend, Room: "general", ID: "l" + strconv.Itoa(i), Text: "still here"})
		if ack := live.next(proto.TypeAck); ack.ID != "l"+strconv.Itoa(i) {
			t.Fatalf("ack = %+v", ack)
		}
		if scrape(t, ts.URL)["kaiwa_connections"] == 1 {
			break
		}
		if time.Since(start) > 90*time.Second {
			t.Fatalf("the socket that never reads was not closed within 90 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("the socket that never reads was closed after %v", time.Since(start).Round(time.Millisecond))
	waitMetric(t, ts.URL, "kaiwa_queue_overflows_total", 1)
	stalled.CloseNow()
	time.Sleep(time.Second)
	held := int64(heapStalled) - int64(heap())
	t.Logf("while it was stalled, after joining 3 MB of history with after=0, it held %.0f KiB of heap", float64(held)/1024)
	if held > 768<<10 {
		t.Errorf("the stalled socket held %d KiB, more than 768 KiB", held>>10)
	}
}

var _ = http.StatusOK
