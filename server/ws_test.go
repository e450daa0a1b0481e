package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"kaiwa/server"
	"kaiwa/server/servertest"
	"kaiwa/server/store"
	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// testServer is a real Kaiwa server over a real bbolt file or, for a test of clusterSuite run
// in cluster mode, three Kaiwa nodes on a real JetStream cluster (the first as the
// httptest.Server; sign-ups and sockets go to each node in turn).
type testServer struct {
	*httptest.Server
	st    testStore
	srv   *server.Server
	nodes []string // the nodes' URLs in cluster mode
	turn  atomic.Int64
}

// testStore is what the tests do to a server's storage directly: a *store.Store, or a cluster
// node's engine.
type testStore interface {
	store.Engine
	CreateRoom(name string) (proto.Room, error)
	Page(room string, before, after *uint64, limit int) ([]proto.Message, bool, error)
}

func newTestServer(t *testing.T, cfg server.Config) *testServer {
	t.Helper()
	cfg.Registration = true
	cfg.SecureCookies = "never"
	if inClusterMode(t) {
		return newClusterTestServer(t, cfg)
	}
	k := servertest.Start(t, cfg, nil)
	return &testServer{Server: k.Server, st: k.Store, srv: k.Kaiwa}
}

// nodeURL returns the URL of the server, or in cluster mode of its next node.
func (ts *testServer) nodeURL() string {
	if len(ts.nodes) == 0 {
		return ts.URL
	}
	return ts.nodes[int(ts.turn.Add(1))%len(ts.nodes)]
}

// register signs up a new user and returns its token body.
func (ts *testServer) register(t *testing.T, name string) proto.TokenBody {
	t.Helper()
	tb, err := client.NewAPI(ts.nodeURL(), nil).Register(context.Background(), name, "password-"+name)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// socket is a raw test client that reads frames one per line.
type socket struct {
	t      *testing.T
	ws     *websocket.Conn
	frames chan proto.Frame
	closed chan error
}

func (ts *testServer) dial(t *testing.T, protocols ...string) (*socket, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.nodeURL(), "http")+"/ws", &websocket.DialOptions{Subprotocols: protocols})
	if err != nil {
		return nil, resp, err
	}
	s := &socket{t: t, ws: ws, frames: make(chan proto.Frame, 10000), closed: make(chan error, 1)}
	go s.read()
	t.Cleanup(func() { ws.CloseNow() })
	return s, resp, nil
}

func (ts *testServer) connect(t *testing.T, token string) *socket {
	t.Helper()
	s, _, err := ts.dial(t, proto.Subprotocol, proto.BearerProtocol+token)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *socket) read() {
	for {
		_, data, err := s.ws.Read(context.Background())
		if err != nil {
			s.closed <- err
			close(s.frames)
			return
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var f proto.Frame
			if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
				s.t.Errorf("bad frame from server %q: %v", sc.Text(), err)
				continue
			}
			s.frames <- f
		}
	}
}

func (s *socket) write(v any) {
	s.t.Helper()
	b, _ := json.Marshal(v)
	if err := s.ws.Write(context.Background(), websocket.MessageText, b); err != nil {
		s.t.Fatal(err)
	}
}

// next returns the next frame of the given type, skipping others (presence, typing), waiting
// up to 20 s: the tests share a busy machine, and several of them run at once.
func (s *socket) next(typ string) proto.Frame {
	s.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case f, ok := <-s.frames:
			if !ok {
				s.t.Fatalf("socket closed waiting for %q: %v", typ, <-s.closed)
			}
			if f.Type == typ {
				return f
			}
		case <-timeout:
			s.t.Fatalf("no %q frame within 20 s", typ)
		}
	}
}

// closeCode waits for the socket to end and returns its close code.
func (s *socket) closeCode() websocket.StatusCode {
	s.t.Helper()
	select {
	case err := <-s.closed:
		return websocket.CloseStatus(err)
	case <-time.After(5 * time.Second):
		s.t.Fatal("socket not closed within 5 s")
		return 0
	}
}

func TestWebSocketHandshake(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, server.Config{})
	tb := ts.register(t, "alice")

	t.Run("selects exactly kaiwa.v1 and says hello", func(t *testing.T) {
		s, resp, err := ts.dial(t, proto.Subprotocol, proto.BearerProtocol+tb.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Values("Sec-WebSocket-Protocol"); len(got) != 1 || got[0] != proto.Subprotocol {
			t.Fatalf("Sec-WebSocket-Protocol = %q, want exactly %q", got, proto.Subprotocol)
		}
		for name, vals := range resp.Header {
			for _, v := range vals {
				if strings.Contains(v, tb.AccessToken) {
					t.Fatalf("token echoed in header %s", name)
				}
			}
		}
		hello := s.next(proto.TypeHello)
		if hello.User.Name != "alice" || hello.Session == "" || hello.ExpiresAt.IsZero() {
			t.Fatalf("hello = %+v", hello)
		}
	})
	t.Run("no kaiwa.v1 is 400", func(t *testing.T) {
		_, resp, err := ts.dial(t, proto.BearerProtocol+tb.AccessToken)
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("err %v, resp %v", err, resp)
		}
	})
	t.Run("foreign origin is 403", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/ws", &websocket.DialOptions{
			Subprotocols: []string{proto.Subprotocol, proto.BearerProtocol + tb.AccessToken},
			HTTPHeader:   http.Header{"Origin": {"http://evil.example"}},
		})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("err %v, resp %v", err, resp)
		}
	})
	for _, tc := range []struct {
		name  string
		token string
		code  websocket.StatusCode
	}{
		{"missing token", "", proto.CloseUnauthorized},
		{"garbage token", "not-a-jwt", proto.CloseUnauthorized},
		{"tampered token", tampered(tb.AccessToken), proto.CloseUnauthorized},
	} {
		t.Run(tc.name+" closes "+fmt.Sprint(tc.code), func(t *testing.T) {
			protos := []string{proto.Subprotocol}
			if tc.token != "" {
				protos = append(protos, proto.BearerProtocol+tc.token)
			}
			s, _, err := ts.dial(t, protos...)
			if err != nil {
				t.Fatal(err)
			}
			if code := s.closeCode(); code != tc.code {
				t.Fatalf("close code %d, want %d", code, tc.code)
			}
			if n := len(s.frames); n != 0 {
				t.Fatalf("%d frames sent before the close", n)
			}
		})
	}
}

// tampered changes one character inside the token's signature. Not the last one: of its six
// bits only the first four are signature bytes, so some changes there decode to the same bytes.
func tampered(token string) string {
	i := len(token) - 10
	c := byte('A')
	if token[i] == c {
		c = 'B'
	}
	return token[:i] + string(c) + token[i+1:]
}

func TestWebSocketExpiryAndRevocation(t *testing.T) {
	t.Parallel()
	// 3 s tokens: valid 2–3 s (exp is in whole seconds), time enough to connect on a slow machine.
	ts := newTestServer(t, server.Config{AccessTTL: 3 * time.Second})
	t.Run("open socket closed 4001 after exp", func(t *testing.T) {
		t.Parallel()
		tb := ts.register(t, "bob")
		s := ts.connect(t, tb.AccessToken)
		s.next(proto.TypeHello)
		if code := s.closeCode(); code != proto.CloseTokenExpired {
			t.Fatalf("close code %d, want 4001", code)
		}
		// exp has whole seconds; allow the clock's rounding, no more.
		if now := time.Now(); now.Before(tb.ExpiresAt.Add(-100*time.Millisecond)) || now.After(tb.ExpiresAt.Add(2*time.Second)) {
			t.Fatalf("closed at %v, want within 2 s after exp %v", now.Format(time.StampMilli), tb.ExpiresAt.Format(time.StampMilli))
		}
	})
	t.Run("expired token closes 4001 at once", func(t *testing.T) {
		t.Parallel()
		tb := ts.register(t, "carol")
		time.Sleep(time.Until(tb.ExpiresAt) + 100*time.Millisecond)
		s := ts.connect(t, tb.AccessToken)
		if code := s.closeCode(); code != proto.CloseTokenExpired {
			t.Fatalf("close code %d, want 4001", code)
		}
	})
	t.Run("logout closes the session's sockets 4003", func(t *testing.T) {
		t.Parallel()
		// Tokens of the default lifetime: a token that expired first would close 4001.
		ts := newTestServer(t, server.Config{})
		api := client.NewAPI(ts.URL, nil)
		tb, err := api.Register(context.Background(), "dave", "password-dave")
		if err != nil {
			t.Fatal(err)
		}
		s := ts.connect(t, tb.AccessToken)
		s.next(proto.TypeHello)
		if err := api.Logout(context.Background()); err != nil {
			t.Fatal(err)
		}
		if code := s.closeCode(); code != proto.CloseRevoked {
			t.Fatalf("close code %d, want 4003", code)
		}
		s2 := ts.connect(t, tb.AccessToken)
		if code := s2.closeCode(); code != proto.CloseRevoked {
			t.Fatalf("revoked session: close code %d, want 4003", code)
		}
	})
}

func TestWebSocketChat(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, server.Config{})
	alice := ts.connect(t, ts.register(t, "alice").AccessToken)
	bob := ts.connect(t, ts.register(t, "bob").AccessToken)
	after := uint64(0)
	for _, s := range []*socket{alice, bob} {
		s.write(proto.Join{Type: proto.TypeJoin, Room: "general", After: &after})
		if j := s.next(proto.TypeJoined); j.Room != "general" || j.LastSeq != 0 {
			t.Fatalf("joined = %+v", j)
		}
	}
	if p := alice.next(proto.TypePresence); strings.Join(p.Online, ",") != "alice" {
		t.Fatalf("presence %v", p.Online)
	}
	if p := alice.next(proto.TypePresence); strings.Join(p.Online, ",") != "alice,bob" {
		t.Fatalf("presence %v", p.Online)
	}
	alice.write(proto.Send{Type: proto.TypeSend, Room: "general", ID: "m1", Text: "  hello  "})
	ack := alice.next(proto.TypeAck)
	if ack.ID != "m1" || ack.Seq != 1 || ack.Room != "general" {
		t.Fatalf("ack = %+v", ack)
	}
	for _, s := range []*socket{alice, bob} {
		m := s.next(proto.TypeMessage)
		if m.Seq != 1 || m.ID != "m1" || m.From != "alice" || m.Text != "hello" || m.TS.IsZero() {
			t.Fatalf("message = %+v", m)
		}
	}
	// A retry of the same id: the same ack, no second message.
	alice.write(proto.Send{Type: proto.TypeSend, Room: "general", ID: "m1", Text: "hello"})
	if again := alice.next(proto.TypeAck); again.Seq != 1 {
		t.Fatalf("retry ack = %+v", again)
	}
	alice.write(proto.Send{Type: proto.TypeSend, Room: "general", ID: "m2", Text: "two"})
	if m := bob.next(proto.TypeMessage); m.Seq != 2 || m.ID != "m2" {
		t.Fatalf("after retry, bob got %+v", m)
	}
	// A late joiner replays from after.
	carol := ts.connect(t, ts.register(t, "carol").AccessToken)
	one := uint64(1)
	carol.write(proto.Join{Type: proto.TypeJoin, Room: "general", After: &one})
	if j := carol.next(proto.TypeJoined); j.LastSeq != 2 {
		t.Fatalf("joined = %+v", j)
	}
	if m := carol.next(proto.TypeMessage); m.Seq != 2 {
		t.Fatalf("replay = %+v", m)
	}
	bob.write(proto.Typing{Type: proto.TypeTyping, Room: "general"})
	if ty := alice.next(proto.TypeTyping); ty.User.Name != "bob" {
		t.Fatalf("typing = %+v", ty)
	}
	msgs, _, err := ts.st.Page("general", nil, nil, 10)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("stored %d messages, err %v", len(msgs), err)
	}
	_ = errors.New
}
