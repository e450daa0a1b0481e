package cluster_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"kaiwa/server"
	"kaiwa/server/auth"
	"kaiwa/server/cluster/clustertest"
	"kaiwa/server/store/storetest"
	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// TestServers runs three whole Kaiwa servers on a three-node JetStream cluster.
func TestServers(t *testing.T) {
	t.Parallel()
	nodes := clustertest.Nodes(t, 3)
	// Presence refreshed every 200 ms: a dead node's users go offline within 600 ms.
	servers := clustertest.Servers(t, clustertest.Engines(t, nodes),
		server.Config{Registration: true, SecureCookies: "never", RateLimitsOff: true, PresenceRefresh: 200 * time.Millisecond})

	t.Run("members on different nodes see one order without gaps", func(t *testing.T) {
		const each = 30
		names := []string{"ann", "bob", "cid"}
		socks := make([]*wsClient, len(names))
		for i, name := range names {
			// Registered on one node, connected to the next: a user is known everywhere.
			tb, err := client.NewAPI(servers[i].URL, nil).Register(context.Background(), name, "password-"+name)
			if err != nil {
				t.Fatal(err)
			}
			socks[i] = dialWS(t, servers[(i+1)%len(servers)].URL, tb.AccessToken)
			socks[i].next(t, proto.TypeHello)
			socks[i].send(t, map[string]any{"type": "join", "room": "general", "after": 0})
			socks[i].next(t, "joined")
		}
		var wg sync.WaitGroup
		for i, s := range socks {
			wg.Go(func() {
				for j := range each {
					s.send(t, proto.Send{Type: proto.TypeSend, Room: "general", ID: fmt.Sprintf("%s-%d", names[i], j), Text: fmt.Sprintf("%s says %d", names[i], j)})
					if j%10 == 9 {
						time.Sleep(100 * time.Millisecond) // under the send rate limit
					}
				}
			})
		}
		wg.Wait()
		total := each * len(socks)
		var first []string
		for i, s := range socks {
			var seen []string
			for len(seen) < total {
				f := s.next(t, "message")
				if f.Seq != uint64(len(seen)+1) {
					t.Fatalf("%s: message seq %d after %d: a gap or a reorder", names[i], f.Seq, len(seen))
				}
				seen = append(seen, f.From+"/"+f.ID)
			}
			if first == nil {
				first = seen
			} else if strings.Join(seen, ",") != strings.Join(first, ",") {
				t.Fatalf("%s saw another order than %s:\n%v\n%v", names[i], names[0], seen, first)
			}
		}
	})

	t.Run("typing reaches members on another node", func(t *testing.T) {
		var socks []*wsClient
		for i, name := range []string{"tess", "theo"} {
			tb, err := client.NewAPI(servers[i].URL, nil).Register(context.Background(), name, "password-"+name)
			if err != nil {
				t.Fatal(err)
			}
			s := dialWS(t, servers[i].URL, tb.AccessToken)
			s.next(t, proto.TypeHello)
			s.send(t, map[string]any{"type": "join", "room": "general"})
			s.next(t, "joined")
			socks = append(socks, s)
		}
		socks[0].send(t, map[string]any{"type": "typing", "room": "general"})
		if f := socks[1].next(t, "typing"); f.User.Name != "tess" {
			t.Fatalf("typing frame %+v, want tess typing", f)
		}
	})

	t.Run("members on two nodes see each other online", func(t *testing.T) {
		const room = "lobby"
		if _, err := servers[2].Engine.CreateRoom(room); err != nil {
			t.Fatal(err)
		}
		var socks []*wsClient
		for i, name := range []string{"pia", "quin"} {
			tb, err := client.NewAPI(servers[i].URL, nil).Register(context.Background(), name, "password-"+name)
			if err != nil {
				t.Fatal(err)
			}
			s := dialWS(t, servers[i].URL, tb.AccessToken)
			s.next(t, proto.TypeHello)
			s.send(t, map[string]any{"type": "join", "room": room})
			s.next(t, "joined")
			socks = append(socks, s)
		}
		for i, s := range socks {
			s.presence(t, room, func(online []string) bool { return slices.Equal(online, []string{"pia", "quin"}) })
			t.Logf("socket %d sees both online", i)
		}
	})

	t.Run("a session refreshed on one node and revoked on another closes its socket on a third", func(t *testing.T) {
		jarClient := newJarClient(t)
		api := func(i int) *client.API { return client.NewAPI(servers[i].URL, jarClient) }
		tb, err := api(0).Register(context.Background(), "dora", "password-dora")
		if err != nil {
			t.Fatal(err)
		}
		// Cookies ignore ports: the one refresh cookie goes to every node.
		if tb, err = api(1).Refresh(context.Background()); err != nil {
			t.Fatalf("refresh on another node: %v", err)
		}
		s := dialWS(t, servers[2].URL, tb.AccessToken)
		s.next(t, proto.TypeHello)
		if err := api(0).Logout(context.Background()); err != nil {
			t.Fatal(err)
		}
		if code := s.closeCode(t); code != proto.CloseRevoked {
			t.Fatalf("socket closed with %d, want %d", code, proto.CloseRevoked)
		}
		if _, err := api(2).Refresh(context.Background()); err == nil {
			t.Fatal("a revoked session refreshed")
		}
	})

	t.Run("healthz answers ok while JetStream answers", func(t *testing.T) {
		for i, s := range servers {
			if code := healthz(t, s.URL); code != http.StatusOK {
				t.Errorf("node %d: /healthz %d", i, code)
			}
		}
	})

	t.Run("a backup from a node opens as a single-process database", func(t *testing.T) {
		a, err := auth.New(servers[1].Engine, auth.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.CreateUser(context.Background(), "root", "password-root", true); err != nil {
			t.Fatal(err)
		}
		api := client.NewAPI(servers[2].URL, nil)
		tb, err := api.Login(context.Background(), "root", "password-root")
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "backup.db")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := api.Backup(context.Background(), tb.AccessToken, f); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		single := storetest.OpenAt(t, path)
		if !bytes.Equal(single.SigningKey(), servers[0].Engine.SigningKey()) {
			t.Error("the backup has another signing key")
		}
		got, _, err := single.Page("general", nil, nil, 1000)
		if err != nil {
			t.Fatal(err)
		}
		want, _, err := servers[0].Engine.Page("general", nil, nil, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 || len(got) != len(want) || got[len(got)-1].ID != want[len(want)-1].ID {
			t.Fatalf("the backup holds %d messages of general, the cluster %d", len(got), len(want))
		}
		if u, err := single.UserByName("root"); err != nil || !u.Admin {
			t.Fatalf("the backup's administrator: %+v, %v", u, err)
		}
	})

	// Last: it stops a node for good.
	t.Run("a client of a node that dies resumes on another by seq", func(t *testing.T) {
		const room, before, after = "resume", 15, 15
		if _, err := servers[0].Engine.CreateRoom(room); err != nil {
			t.Fatal(err)
		}
		var tokens []string
		for i, name := range []string{"wes", "rea"} {
			tb, err := client.NewAPI(servers[i].URL, nil).Register(context.Background(), name, "password-"+name)
			if err != nil {
				t.Fatal(err)
			}
			tokens = append(tokens, tb.AccessToken)
		}
		writer := dialWS(t, servers[0].URL, tokens[0])
		writer.next(t, proto.TypeHello)
		writer.send(t, map[string]any{"type": "join", "room": room})
		writer.next(t, "joined")
		reader := dialWS(t, servers[1].URL, tokens[1])
		reader.next(t, proto.TypeHello)
		reader.send(t, map[string]any{"type": "join", "room": room, "after": 0})
		reader.next(t, "joined")
		writer.presence(t, room, func(online []string) bool { return slices.Contains(online, "rea") })
		sendAcked := func(from, to int) {
			for j := from; j < to; j++ {
				writer.send(t, proto.Send{Type: proto.TypeSend, Room: room, ID: fmt.Sprintf("w-%d", j), Text: fmt.Sprintf("%d", j)})
				if ack := writer.next(t, "ack"); ack.Seq != uint64(j+1) {
					t.Fatalf("send %d acked at seq %d", j, ack.Seq)
				}
			}
		}
		sendAcked(0, before)
		var last uint64
		for last < before/2 {
			f := reader.next(t, "message")
			if f.Seq != last+1 {
				t.Fatalf("message seq %d after %d", f.Seq, last)
			}
			last = f.Seq
		}
		servers[1].Stop()
		// Its users go offline on the other nodes once its sets are stale.
		writer.presence(t, room, func(online []string) bool { return !slices.Contains(online, "rea") })
		sendAcked(before, before+after)
		// The reader's client reconnects to another node and resumes after what it saw.
		reader = dialWS(t, servers[2].URL, tokens[1])
		reader.next(t, proto.TypeHello)
		reader.send(t, map[string]any{"type": "join", "room": room, "after": last})
		reader.next(t, "joined")
		for last < before+after {
			f := reader.next(t, "message")
			if f.Seq != last+1 || f.ID != fmt.Sprintf("w-%d", last) {
				t.Fatalf("after resuming: message %s at seq %d after %d", f.ID, f.Seq, last)
			}
			last = f.Seq
		}
	})
}

// wsClient is a raw WebSocket client that reads frames, one per line, into a channel.
type wsClient struct {
	ws     *websocket.Conn
	frames chan proto.Frame
	closed chan error
}

func dialWS(t *testing.T, base, token string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws",
		&websocket.DialOptions{Subprotocols: []string{proto.Subprotocol, proto.BearerProtocol + token}})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(1 << 20)
	c := &wsClient{ws: ws, frames: make(chan proto.Frame, 10000), closed: make(chan error, 1)}
	go c.read()
	t.Cleanup(func() { ws.CloseNow() })
	return c
}

func (c *wsClient) read() {
	defer close(c.frames)
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.closed <- err
			return
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var f proto.Frame
			if json.Unmarshal(sc.Bytes(), &f) == nil {
				c.frames <- f
			}
		}
	}
}

func (c *wsClient) send(t *testing.T, v any) {
	data, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, data); err != nil {
		t.Error(err)
	}
}

// presence waits for a presence frame of the room whose online list satisfies ok.
func (c *wsClient) presence(t *testing.T, room string, ok func([]string) bool) {
	t.Helper()
	for {
		f := c.next(t, "presence")
		if f.Room == room && ok(f.Online) {
			return
		}
	}
}

// closeCode waits for the socket to be closed by the server and returns the close code.
func (c *wsClient) closeCode(t *testing.T) websocket.StatusCode {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				return websocket.CloseStatus(<-c.closed)
			}
		case <-timeout:
			t.Fatal("socket not closed within 30 s")
		}
	}
}

func newJarClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar}
}

// next returns the next frame of type typ, skipping others; an error frame fails the test.
func (c *wsClient) next(t *testing.T, typ string) proto.Frame {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				t.Fatalf("socket closed waiting for %q: %v", typ, <-c.closed)
			}
			if f.Type == "error" {
				t.Fatalf("error frame waiting for %q: %s %s", typ, f.Code, f.Message)
			}
			if f.Type == typ {
				return f
			}
		case <-timeout:
			t.Fatalf("no %q frame within 30 s", typ)
		}
	}
}

// TestServerHealthz checks that /healthz answers 503 once the node's JetStream is gone.
func TestServerHealthz(t *testing.T) {
	t.Parallel()
	nodes := clustertest.Nodes(t, 1)
	s := clustertest.Servers(t, clustertest.Engines(t, nodes), server.Config{Registration: true})[0]
	if code := healthz(t, s.URL); code != http.StatusOK {
		t.Fatalf("/healthz %d with JetStream up, want 200", code)
	}
	api := client.NewAPI(s.URL, nil)
	if _, err := api.Register(context.Background(), "una", "password-una"); err != nil {
		t.Fatal(err)
	}
	nodes[0].Close()
	if code := healthz(t, s.URL); code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz %d with JetStream down, want 503", code)
	}
	// A sign-in stores a session: without JetStream it is answered 503 unavailable, to retry,
	// not 500.
	if _, err := api.Login(context.Background(), "una", "password-una"); !client.IsCode(err, proto.CodeUnavailable) {
		t.Fatalf("sign-in with JetStream down: %v, want unavailable", err)
	}
}

func healthz(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
