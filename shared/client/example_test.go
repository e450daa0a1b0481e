//go:build !js

package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"

	"kaiwa/server"
	"kaiwa/server/store"
	"kaiwa/shared/client"
)

// exampleServer starts a Kaiwa server on a new database and returns its URL and a stop func.
func exampleServer() (string, func()) {
	dir, _ := os.MkdirTemp("", "kaiwa-example")
	st, _ := store.Open(filepath.Join(dir, "kaiwa.db"))
	srv, _ := server.New(server.Config{Registration: true}, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ts := httptest.NewServer(srv.Handler())
	return ts.URL, func() {
		srv.Close()
		ts.Close()
		st.Close()
		os.RemoveAll(dir)
	}
}

// A session signs in, joins a room, sends a message and sees it come back with its seq.
func ExampleSession() {
	url, stop := exampleServer()
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	api := client.NewAPI(url, nil)
	tb, err := api.Register(ctx, "alice", "correct horse battery")
	if err != nil {
		fmt.Println(err)
		return
	}
	sess := client.NewSession(api, client.Options{Token: &tb, Rooms: map[string]uint64{"general": 0}})
	sub := sess.Subscribe(client.Filter{Room: "general", Kinds: []client.EventKind{client.EventMessage}})
	defer sub.Close()
	go sess.Run(ctx)
	sess.Send("general", "hello, Kaiwa")
	ev := <-sub.C()
	fmt.Printf("#%d %s: %s\n", ev.Message.Seq, ev.Message.From, ev.Message.Text)
	// Output: #1 alice: hello, Kaiwa
}

// The session makes the HTTP API calls with its token, renewing it when it has expired.
func ExampleSession_CreateRoom() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	api := client.NewAPI(url, nil)
	tb, err := api.Register(ctx, "alice", "correct horse battery")
	if err != nil {
		fmt.Println(err)
		return
	}
	sess := client.NewSession(api, client.Options{Token: &tb})
	if _, err := sess.CreateRoom(ctx, "Not a room name"); client.IsCode(err, "invalid_room") {
		fmt.Println("refused: invalid_room")
	}
	room, err := sess.CreateRoom(ctx, "ops")
	if err != nil {
		fmt.Println(err)
		return
	}
	rooms, _ := sess.Rooms(ctx)
	fmt.Println("created", room.Name, "of", len(rooms), "rooms")
	// Output:
	// refused: invalid_room
	// created ops of 2 rooms
}

// A send the server refuses for good stays in the outbox as failed, with its code, until the
// app retries or discards it. Every change of the outbox is an EventOutbox to persist.
func ExampleSession_Discard() {
	url, stop := exampleServer()
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	api := client.NewAPI(url, nil)
	tb, err := api.Register(ctx, "alice", "correct horse battery")
	if err != nil {
		fmt.Println(err)
		return
	}
	sess := client.NewSession(api, client.Options{Token: &tb})
	sub := sess.Subscribe(client.Filter{Kinds: []client.EventKind{client.EventOutbox}})
	go sess.Run(ctx)
	id := sess.Send("nowhere", "to a room never joined")
	for ev := range sub.C() {
		if ev.ID == id && ev.Code != "" {
			fmt.Println("failed:", ev.Code)
			break
		}
	}
	sess.Discard(id)
	fmt.Println("outbox:", len((<-sub.C()).Outbox))
	// Output:
	// failed: not_joined
	// outbox: 0
}

// A session that joins every room of its user keeps each room's unread messages and mentions
// live; moving the read marker clears them here and on the user's other devices.
func ExampleSession_MarkRead() {
	url, stop := exampleServer()
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	api := client.NewAPI(url, nil)
	tb, err := api.Register(ctx, "alice", "correct horse battery")
	if err != nil {
		fmt.Println(err)
		return
	}
	sess := client.NewSession(api, client.Options{Token: &tb, MemberRooms: true})
	sub := sess.Subscribe(client.Filter{Room: "general", Kinds: []client.EventKind{client.EventUnread}})
	go sess.Run(ctx)

	bobAPI := client.NewAPI(url, nil)
	bobToken, err := bobAPI.Register(ctx, "bob", "correct horse battery")
	if err != nil {
		fmt.Println(err)
		return
	}
	bob := client.NewSession(bobAPI, client.Options{Token: &bobToken, Rooms: map[string]uint64{"general": 0}})
	go bob.Run(ctx)
	bob.Send("general", "hello @alice")

	for ev := range sub.C() {
		if ev.Unread > 0 {
			fmt.Printf("%s: %d unread, %d mention\n", ev.Room, ev.Unread, ev.Mentions)
			sess.MarkRead(ev.Room, 1)
			break
		}
	}
	ev := <-sub.C()
	fmt.Printf("%s: %d unread, read up to %d\n", ev.Room, ev.Unread, ev.Seq)
	// Output:
	// general: 1 unread, 1 mention
	// general: 0 unread, read up to 1
}
