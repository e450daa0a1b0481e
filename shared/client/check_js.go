//go:build js

package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"

	"kaiwa/shared/proto"
)

// check asks the server for an answer and waits for any message. A browser's WebSocket cannot
// ping (the server's pings are answered unseen), so the question is a leave of a room with a
// random name, which no socket has joined: the server answers not_joined, which the session
// ignores.
func (sk *socket) check(ctx context.Context) error {
	select {
	case <-sk.alive:
	default:
	}
	name := make([]byte, 12)
	rand.Read(name) // never fails (crypto/rand)
	b, _ := json.Marshal(proto.Leave{Type: proto.TypeLeave, Room: "probe-" + hex.EncodeToString(name)})
	select {
	case sk.out <- b:
	default:
		return errors.New("kaiwa: socket stuck")
	}
	select {
	case <-sk.alive:
		return nil
	case <-sk.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
