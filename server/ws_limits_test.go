package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"kaiwa/server"
	"kaiwa/shared/proto"
)

func TestWebSocketBadFrames(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, server.Config{})
	token := ts.register(t, "alice").AccessToken

	joined := func(t *testing.T) *socket {
		t.Helper()
		s := ts.connect(t, token)
		s.write(proto.Join{Type: proto.TypeJoin, Room: "general"})
		s.next(proto.TypeJoined)
		return s
	}
	raw := func(s *socket, data string) {
		s.t.Helper()
		if err := s.ws.Write(context.Background(), websocket.MessageText, []byte(data)); err != nil {
			s.t.Fatal(err)
		}
	}

	errorCases := []struct {
		name, frame, code, ref string
	}{
		{"bad JSON", `{"type":`, proto.CodeBadFrame, ""},
		{"not an object", `[1,2]`, proto.CodeBadFrame, ""},
		{"wrong field type", `{"type":"send","room":5}`, proto.CodeBadFrame, ""},
		{"no type", `{"room":"general"}`, proto.CodeBadFrame, ""},
		{"unknown type", `{"type":"dance","room":"general","id":"x1"}`, proto.CodeUnknownType, "x1"},
		{"badly formed room", `{"type":"join","room":"Bad Room"}`, proto.CodeInvalidRoom, ""},
		{"room that does not exist", `{"type":"join","room":"nope"}`, proto.CodeInvalidRoom, ""},
		{"send before join", `{"type":"send","room":"other","id":"s1","text":"hi"}`, proto.CodeNotJoined, "s1"},
		{"blank text", `{"type":"send","room":"general","id":"s2","text":" \n\t "}`, proto.CodeEmptyText, "s2"},
		{"text too long", `{"type":"send","room":"general","id":"s3","text":"` + strings.Repeat("é", 4001) + `"}`, proto.CodeTextTooLong, "s3"},
		{"send without id", `{"type":"send","room":"general","text":"hi"}`, proto.CodeBadFrame, ""},
		{"leave a room not joined", `{"type":"leave","room":"other"}`, proto.CodeNotJoined, ""},
	}
	if _, err := ts.st.CreateRoom("other"); err != nil {
		t.Fatal(err)
	}
	s := joined(t)
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			raw(s, tc.frame)
			e := s.next(proto.TypeError)
			if e.Code != tc.code || e.Ref != tc.ref || e.Message == "" {
				t.Fatalf("error = %+v, want code %q ref %q", e, tc.code, tc.ref)
			}
		})
	}
	t.Run("4000 code points after trimming is fine", func(t *testing.T) {
		raw(s, `{"type":"send","room":"general","id":"ok1","text":"  `+strings.Repeat("é", 4000)+`  "}`)
		if ack := s.next(proto.TypeAck); ack.ID != "ok1" {
			t.Fatalf("ack = %+v", ack)
		}
	})
	t.Run("binary message is a bad frame", func(t *testing.T) {
		if err := s.ws.Write(context.Background(), websocket.MessageBinary, []byte(`{"type":"join"}`)); err != nil {
			t.Fatal(err)
		}
		if e := s.next(proto.TypeError); e.Code != proto.CodeBadFrame {
			t.Fatalf("error = %+v", e)
		}
	})

	closeCases := []struct {
		name string
		send func(s *socket)
		code websocket.StatusCode
	}{
		{"message over 32 KiB", func(s *socket) {
			raw(s, `{"type":"send","room":"general","id":"big","text":"`+strings.Repeat("a", 33<<10)+`"}`)
		}, proto.CloseMessageTooBig},
		{"invalid UTF-8", func(s *socket) {
			raw(s, "{\"type\":\"send\",\"room\":\"general\",\"id\":\"u\",\"text\":\"\xff\xfe\"}")
		}, proto.CloseInvalidUTF8},
		{"10 bad frames in a row", func(s *socket) {
			for range 10 {
				raw(s, `{"type":"dance"}`)
			}
		}, proto.ClosePolicy},
	}
	for _, tc := range closeCases {
		t.Run(tc.name, func(t *testing.T) {
			s := joined(t)
			tc.send(s)
			if code := s.closeCode(); code != tc.code {
				t.Fatalf("close code %d, want %d", code, tc.code)
			}
		})
	}
	t.Run("an accepted frame resets the bad-frame count", func(t *testing.T) {
		s := joined(t)
		for round := range 3 {
			for range 9 {
				raw(s, `{"type":"dance"}`)
			}
			for range 9 {
				s.next(proto.TypeError)
			}
			raw(s, `{"type":"typing","room":"general"}`)
			_ = round
		}
		raw(s, `{"type":"send","room":"general","id":"alive","text":"still here"}`)
		if ack := s.next(proto.TypeAck); ack.ID != "alive" {
			t.Fatalf("ack = %+v", ack)
		}
	})
	t.Run("flood is rate limited and not stored", func(t *testing.T) {
		s := joined(t)
		before, _ := ts.st.Room("general")
		start := time.Now()
		for i := range 100 {
			raw(s, `{"type":"send","room":"general","id":"f`+strings.Repeat("x", i%3)+string(rune('a'+i%26))+string(rune('a'+i/26))+`","text":"flood"}`)
		}
		acks, limited := 0, 0
		for acks+limited < 100 {
			f := <-s.frames
			switch {
			case f.Type == proto.TypeAck:
				acks++
			case f.Type == proto.TypeError && f.Code == proto.CodeRateLimited:
				if f.Ref == "" {
					t.Fatal("rate_limited error without ref")
				}
				limited++
			}
		}
		// The limit lets a burst of 40 through, then 20 a second for as long as the flood took.
		allowed := 40 + int(20*time.Since(start).Seconds()) + 1
		after, _ := ts.st.Room("general")
		if limited == 0 || acks > allowed {
			t.Fatalf("%d acked (at most %d allowed), %d rate limited: the limit did not hold", acks, allowed, limited)
		}
		if stored := int(after.LastSeq - before.LastSeq); stored != acks {
			t.Fatalf("stored %d, acked %d", stored, acks)
		}
	})
}

// TestSlowReaderCatchesUp: a member that reads one WebSocket message every 100 ms through a
// small receive buffer falls megabytes behind three senders of 16 KB messages. It is not closed: it
// is fed from storage as it reads, and once it reads faster it has every message once, in
// order, as has a fast member of the same room. (A member that stops reading altogether is
// TestNonReaderClosed.)
func TestSlowReaderCatchesUp(t *testing.T) {
	ts := newTestServer(t, server.Config{})
	fast := ts.connect(t, ts.register(t, "fast").AccessToken)
	fast.write(proto.Join{Type: proto.TypeJoin, Room: "general"})
	fast.next(proto.TypeJoined)

	slowTB := ts.register(t, "slow")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dialer := &net.Dialer{}
	slow, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/ws", &websocket.DialOptions{
		Subprotocols: []string{proto.Subprotocol, proto.BearerProtocol + slowTB.AccessToken},
		HTTPClient: &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err == nil {
				c.(*net.TCPConn).SetReadBuffer(64 << 10)
			}
			return c, err
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	slow.SetReadLimit(1 << 20)
	if err := slow.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"general"}`)); err != nil {
		t.Fatal(err)
	}

	// Senders: members that discard what they receive unread, each sending its burst and then
	// at the rate limit, 16 KB messages (4000 four-byte code points), for 6 s.
	loud := ts.register(t, "loud").AccessToken
	var senders []*websocket.Conn
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/ws", &websocket.DialOptions{
			Subprotocols: []string{proto.Subprotocol, proto.BearerProtocol + loud},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		// The server reads a socket's frames in order: the join is done before the first send.
		if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"general"}`)); err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				if _, _, err := ws.Read(context.Background()); err != nil {
					return
				}
			}
		}()
		senders = append(senders, ws)
	}

	// The slow member checks the order of what it reads, and reads fast once hurried.
	var slowSeq atomic.Uint64
	slowErr := make(chan error, 1)
	hurry := make(chan struct{})
	go func() {
		for {
			_, data, err := slow.Read(context.Background())
			if err != nil {
				slowErr <- fmt.Errorf("slow member closed: %w", err)
				return
			}
			for line := range strings.SplitSeq(string(data), "\n") {
				var f proto.Frame
				if json.Unmarshal([]byte(line), &f) != nil || f.Type != proto.TypeMessage {
					continue
				}
				if f.Seq != slowSeq.Load()+1 {
					slowErr <- fmt.Errorf("slow member got seq %d after %d", f.Seq, slowSeq.Load())
					return
				}
				slowSeq.Store(f.Seq)
			}
			select {
			case <-hurry:
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	// The senders go on until the slow member is well behind: at least 6 s, and on a slow machine
	// until the room holds 150 messages more than the member has read (at most 60 s).
	text := strings.Repeat("😀", 4000)
	start := time.Now()
	sent := 0
	for i := 0; time.Since(start) < 60*time.Second; i++ {
		if time.Since(start) >= 6*time.Second && i%10 == 0 {
			room, err := ts.st.Room("general")
			if err != nil {
				t.Fatal(err)
			}
			if room.LastSeq >= slowSeq.Load()+150 {
				break
			}
		}
		for j, ws := range senders {
			ws.Write(context.Background(), websocket.MessageText,
				[]byte(`{"type":"send","room":"general","id":"m`+strconv.Itoa(i)+`-`+strconv.Itoa(j)+`","text":"`+text+`"}`))
			sent++
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Every send is stored unless rate limited: the room's last seq says how many.
	deadline := time.Now().Add(30 * time.Second)
	var last uint64
	for {
		room, err := ts.st.Room("general")
		if err != nil {
			t.Fatal(err)
		}
		if room.LastSeq == last && last > 0 {
			break
		}
		last = room.LastSeq
		if time.Now().After(deadline) {
			t.Fatal("sends still being stored after 30 s")
		}
		time.Sleep(500 * time.Millisecond)
	}
	behind := last - slowSeq.Load()
	t.Logf("%d messages of 16 KB in %v; the slow member had read %d of them (%d behind)", last, time.Since(start).Round(time.Millisecond), slowSeq.Load(), behind)
	if behind < 100 {
		t.Fatalf("the slow member was only %d messages behind: the test did not make it fall behind", behind)
	}
	close(hurry)
	var fastSeq uint64
	for fastSeq < last {
		f := fast.next(proto.TypeMessage)
		if f.Seq != fastSeq+1 {
			t.Fatalf("fast member got seq %d after %d", f.Seq, fastSeq)
		}
		fastSeq = f.Seq
	}
	deadline = time.Now().Add(60 * time.Second)
	for slowSeq.Load() < last {
		select {
		case err := <-slowErr:
			t.Fatal(err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slow member has %d of %d messages after 60 s", slowSeq.Load(), last)
		}
	}
	waitMetric(t, ts.URL, "kaiwa_queue_overflows_total", 0)
}
