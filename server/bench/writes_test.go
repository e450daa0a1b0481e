package bench

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"testing"
	"time"

	kaiwaserver "kaiwa/server"
	"kaiwa/server/servertest"
	"kaiwa/server/store"
	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// TestOneWritePerMemberPerCommit commits several messages of a room in one batch, through the
// server's own store, and reads a member's socket: they all come in one WebSocket message, the
// member's writer started once the whole commit was queued.
func TestOneWritePerMemberPerCommit(t *testing.T) {
	srv := servertest.Start(t, kaiwaserver.Config{Registration: true, SecureCookies: "never", RateLimitsOff: true}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tokens, err := users(ctx, srv.URL, "writer", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.NewAPI(srv.URL, nil).CreateRoom(ctx, tokens[0], "batch"); err != nil {
		t.Fatal(err)
	}
	u, err := srv.Store.UserByName("writer0")
	if err != nil {
		t.Fatal(err)
	}
	m, err := dial(ctx, srv.URL, tokens[0])
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	if err := m.send(ctx, proto.Join{Type: proto.TypeJoin, Room: "batch"}); err != nil {
		t.Fatal(err)
	}
	// next returns the next WebSocket message's frame lines.
	next := func() [][]byte {
		t.Helper()
		_, r, err := m.ws.Reader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Split(data, []byte("\n"))
	}
	for joined := false; !joined; {
		for _, line := range next() {
			joined = joined || frameType(line) == proto.TypeJoined
		}
	}
	const n = 100 // about 15 KiB of frames, under the 32 KiB a writer puts in one WebSocket message
	reqs := make([]store.AppendRequest, n)
	for i := range reqs {
		reqs[i] = store.AppendRequest{Room: "batch", UserID: u.ID, From: u.Name, ClientID: "c" + strconv.Itoa(i), Text: "m" + strconv.Itoa(i)}
	}
	if _, err := srv.Store.AppendBatch(reqs); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) == 0 {
		for _, line := range next() {
			if frameType(line) == proto.TypeMessage {
				got = append(got, jsonField(line, "text"))
			}
		}
	}
	if len(got) != n {
		t.Errorf("the first WebSocket message with messages held %d of the commit's %d: %q", len(got), n, got)
	}
}
