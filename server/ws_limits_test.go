package server_test

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"kaiwa/server"
	"kaiwa/shared/proto"
)

func TestWebSocketBadFrames(t *testing.T) {
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

// TestSlowConsumer: a member that stops reading is closed with 4008 while another member of
// the same room keeps receiving everything.
func TestSlowConsumer(t *testing.T) {
	ts := newTestServer(t, server.Config{})
	fast := ts.connect(t, ts.register(t, "fast").AccessToken)
	fast.write(proto.Join{Type: proto.TypeJoin, Room: "general"})
	fast.next(proto.TypeJoined)

	// The slow member reads one message every 50 ms through a small receive buffer: far behind
	// what arrives, yet fast enough to free room for the close frame within its 1 s (a reader
	// slower than that is dropped without one, as SPEC allows).
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
	if err := slow.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"general"}`)); err != nil {
		t.Fatal(err)
	}

	// Senders: members that discard what they receive unread (decoding it could let them fall
	// behind on a slow machine and be closed themselves), each sending its burst and then at
	// the rate limit, 16 KB messages (4000 four-byte code points).
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
	text := strings.Repeat("😀", 4000)
	stop := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			for j, ws := range senders {
				select {
				case <-stop:
					return
				default:
				}
				ws.Write(context.Background(), websocket.MessageText,
					[]byte(`{"type":"send","room":"general","id":"m`+strconv.Itoa(i)+`-`+strconv.Itoa(j)+`","text":"`+text+`"}`))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	defer close(stop)

	slowDone := make(chan websocket.StatusCode, 1)
	hurry := make(chan struct{})
	go func() {
		for {
			if _, _, err := slow.Read(context.Background()); err != nil {
				slowDone <- websocket.CloseStatus(err)
				return
			}
			select {
			case <-hurry:
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	start := time.Now()

	// The server drops the slow member from the room when it closes it: the fast member sees
	// that in presence, and keeps receiving every message in order meanwhile.
	deadline := time.After(60 * time.Second)
	var lastSeq uint64
	slowGone := false
	for !slowGone {
		select {
		case f := <-fast.frames:
			switch f.Type {
			case proto.TypeMessage:
				if f.Seq != lastSeq+1 {
					t.Fatalf("fast member got seq %d after %d", f.Seq, lastSeq)
				}
				lastSeq = f.Seq
			case proto.TypePresence:
				slowGone = lastSeq > 0 && !slices.Contains(f.Online, "slow")
			}
		case <-deadline:
			t.Fatalf("the slow member was not closed within 60 s (%d messages sent)", lastSeq)
		}
	}
	t.Logf("slow member dropped from the room after %v, %d messages", time.Since(start), lastSeq)
	close(hurry)
	target := lastSeq + 50
	for lastSeq < target {
		f := fast.next(proto.TypeMessage)
		if f.Seq != lastSeq+1 {
			t.Fatalf("fast member got seq %d after %d", f.Seq, lastSeq)
		}
		lastSeq = f.Seq
	}
	// Reading what was buffered before the close, the slow member finds 4008.
	if code := <-slowDone; code != proto.CloseSlowConsumer {
		t.Fatalf("slow member closed with %d, want 4008", code)
	}
	t.Logf("slow member read its 4008 after %v", time.Since(start))
	// At least the slow member's overflow; a sender on a starved machine may overflow too.
	waitMetricAtLeast(t, ts.URL, "kaiwa_queue_overflows_total", 1)
}
