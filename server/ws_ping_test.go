package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"

	"kaiwa/server"
	"kaiwa/shared/proto"
)

// TestSilentPeerIsClosed: a client that stops reading never answers the server's pings, and
// must be gone within 45 s. It takes that long, so it runs beside the package's other tests.
func TestSilentPeerIsClosed(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 35 s")
	}
	t.Parallel()
	ts := newTestServer(t, server.Config{})
	watcher := ts.connect(t, ts.register(t, "watcher").AccessToken)
	watcher.write(proto.Join{Type: proto.TypeJoin, Room: "general"})
	watcher.next(proto.TypeJoined)

	// The silent peer joins, then never reads again: coder/websocket answers pings only while
	// a read is in progress.
	token := ts.register(t, "silent").AccessToken
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	silent, _, err := websocket.Dial(ctx, "ws"+ts.URL[len("http"):]+"/ws", &websocket.DialOptions{
		Subprotocols: []string{proto.Subprotocol, proto.BearerProtocol + token},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.CloseNow()
	start := time.Now()
	if err := silent.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"general"}`)); err != nil {
		t.Fatal(err)
	}
	joined := false
	deadline := time.After(50 * time.Second)
	for {
		select {
		case f := <-watcher.frames:
			if f.Type != proto.TypePresence {
				continue
			}
			here := slices.Contains(f.Online, "silent")
			if here {
				joined = true
			}
			if joined && !here {
				if gone := time.Since(start); gone > 45*time.Second {
					t.Fatalf("silent peer closed after %v, want within 45 s", gone)
				} else {
					t.Logf("silent peer closed after %v", gone.Round(time.Second))
				}
				return
			}
		case <-deadline:
			t.Fatal("silent peer still in the room after 50 s")
		}
	}
}
