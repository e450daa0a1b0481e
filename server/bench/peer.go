package bench

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// The peer is a Centrifugo server, the reference the fan-out is measured against: its memory
// engine keeps history (1000 per channel, recovery forced) and writes nothing to disk. The
// bench does not build it; `kaiwa bench -peer PATH` runs the binary found there.

// peerSecret signs the peer's HS256 connection tokens; the peer only listens on loopback.
const peerSecret = "kaiwa-bench-peer-secret"

// startPeer runs the peer binary on a free loopback port with a configuration written to a
// temporary folder, and waits until it answers /health.
func startPeer(ctx context.Context, bin string) (*server, error) {
	dir, err := os.MkdirTemp("", "kaiwa-bench-peer-")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	config := map[string]any{
		"http_server": map[string]any{"address": "127.0.0.1", "port": port},
		"log":         map[string]any{"level": "error"},
		"engine":      map[string]any{"type": "memory"},
		"client":      map[string]any{"token": map[string]any{"hmac_secret_key": peerSecret}},
		"channel": map[string]any{"without_namespace": map[string]any{
			"history_size": 1000, "history_ttl": "300s", "force_recovery": true,
			"allow_subscribe_for_client": true, "allow_publish_for_subscriber": true,
		}},
		"health":      map[string]any{"enabled": true},
		"usage_stats": map[string]any{"disabled": true},
	}
	data, err := json.MarshalIndent(config, "", "  ")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &server{bin: bin, args: []string{"--config", path}, URL: "http://127.0.0.1:" + strconv.Itoa(port), dir: dir, health: "/health"}
	if err := s.start(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// peerToken is an HS256 connection token for user sub.
func peerToken(sub string) string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{"sub": sub, "exp": time.Now().Add(24 * time.Hour).Unix()})
	unsigned := header + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha256.New, []byte(peerSecret))
	mac.Write([]byte(unsigned))
	return unsigned + "." + enc.EncodeToString(mac.Sum(nil))
}

// peerCommand is one command of the peer's JSON protocol; exactly one of its parts is set.
type peerCommand struct {
	ID        uint32           `json:"id,omitempty"`
	Connect   *peerConnect     `json:"connect,omitempty"`
	Subscribe *peerSubscribe   `json:"subscribe,omitempty"`
	Publish   *peerPublication `json:"publish,omitempty"`
}

type peerConnect struct {
	Token string `json:"token"`
}

type peerSubscribe struct {
	Channel string `json:"channel"`
}

type peerPublication struct {
	Channel string    `json:"channel"`
	Data    peerEvent `json:"data"`
}

// peerEvent is what a benchmark message carries: its text holds the send time, as Kaiwa's
// message text does, so sentAt reads both.
type peerEvent struct {
	Text string `json:"text"`
}

// newPeerLoad connects rooms×perRoom sockets to the peer, each subscribed to one channel, and
// returns them as a roomLoad whose publishes go out in the peer's protocol. Every member reads
// as Kaiwa's do: each pushed publication is a delivery, its latency read from its text.
func newPeerLoad(ctx context.Context, e *env, srv *server, rooms, perRoom int) (*roomLoad, error) {
	l := &roomLoad{srv: srv, rooms: make([]string, rooms), publishers: make([][]*member, rooms), all: make([]*member, rooms*perRoom)}
	for r := range rooms {
		l.rooms[r] = "peer" + strconv.Itoa(r)
	}
	l.sendFrame = func(room, id, text string) any {
		n, _ := strconv.ParseUint(id, 36, 32)
		return peerCommand{ID: uint32(n)%1_000_000_000 + 10, Publish: &peerPublication{Channel: room, Data: peerEvent{Text: text}}}
	}
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/connection/websocket"
	err := parallel(ctx, len(l.all), 64, func(i int) error {
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		ws, _, err := websocket.Dial(dctx, wsURL, nil)
		cancel()
		if err != nil {
			return fmt.Errorf("bench: dial peer: %w", err)
		}
		ws.SetReadLimit(1 << 20)
		m := &member{ws: ws}
		l.all[i] = m
		replies := make(chan []byte, 4)
		go m.read(ctx, func(line []byte) {
			switch {
			case bytes.HasPrefix(line, []byte(`{"push":`)):
				if t, ok := sentAt(line); ok {
					l.lat.record(time.Since(t))
					l.delivered.Add(1)
				}
			case bytes.Equal(line, []byte(`{}`)): // the peer's ping: answer with a pong
				go m.send(ctx, struct{}{})
			case bytes.HasPrefix(line, []byte(`{"id":1,`)), bytes.HasPrefix(line, []byte(`{"id":2,`)):
				replies <- bytes.Clone(line)
			case bytes.HasPrefix(line, []byte(`{"id":`)):
				if bytes.Contains(line, []byte(`"error":`)) {
					e.progress("peer: %s", line)
				} else {
					l.acked.Add(1)
				}
			}
		})
		steps := []peerCommand{
			{ID: 1, Connect: &peerConnect{Token: peerToken("user" + strconv.Itoa(i%100))}},
			{ID: 2, Subscribe: &peerSubscribe{Channel: l.rooms[i%rooms]}},
		}
		for _, c := range steps {
			if err := m.send(ctx, c); err != nil {
				return err
			}
			select {
			case reply := <-replies:
				if bytes.Contains(reply, []byte(`"error":`)) {
					return fmt.Errorf("bench: peer refused: %s", reply)
				}
			case <-time.After(30 * time.Second):
				return errors.New("bench: no reply from the peer within 30 s")
			}
		}
		return nil
	})
	return l.ready(err)
}
