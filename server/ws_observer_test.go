package server_test

import (
	"testing"
	"time"

	"github.com/coder/websocket"

	"kaiwa/server"
	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

// TestWSChangesFromTheStore checks that changes made on the store itself, as a cluster node
// applies those of other nodes, reach the open sockets exactly as those asked of this server:
// the hub hears of them from the store, not from the handlers.
func TestWSChangesFromTheStore(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, server.Config{})
	aliceID, aliceToken := ts.user(t, "alice")
	bobID, bobToken := ts.user(t, "bob")
	alice := ts.connect(t, aliceToken)
	bob := ts.connect(t, bobToken)
	bob.await(proto.TypeHello)
	alice.joinRoom("general")

	// A message sent elsewhere: published to the room, and its sender's marker to all their
	// sockets.
	res, err := ts.st.AppendBatch([]store.AppendRequest{{Room: "general", UserID: bobID, From: "bob", ClientID: "far1", Text: "from elsewhere"}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	if f := alice.await(proto.TypeMessage); f.Room != "general" || f.Seq != 1 || f.Text != "from elsewhere" || f.From != "bob" {
		t.Fatalf("alice got %+v", f)
	}
	if f := bob.await(proto.TypeRead); f.Room != "general" || f.Seq != 1 {
		t.Fatalf("bob's marker: %+v", f)
	}

	// A read marker moved elsewhere.
	if _, err := ts.st.SetRead(aliceID, "general", 1); err != nil {
		t.Fatal(err)
	}
	if f := alice.await(proto.TypeRead); f.Room != "general" || f.Seq != 1 {
		t.Fatalf("alice's marker: %+v", f)
	}

	// Membership changed elsewhere: room frames to those concerned.
	if _, err := ts.st.NewRoom(bobID, "team", proto.RoomPrivate); err != nil {
		t.Fatal(err)
	}
	if r := bob.roomFrame("team"); !r.Member {
		t.Fatalf("bob's room frame: %+v", r)
	}
	if _, err := ts.st.AddMember(bobID, "team", aliceID); err != nil {
		t.Fatal(err)
	}
	if r := alice.roomFrame("team"); !r.Member || len(r.Members) != 2 {
		t.Fatalf("alice's room frame: %+v", r)
	}
	alice.joinRoom("team")

	// The room deleted elsewhere: its members get nothing more from it.
	if err := ts.st.DeleteRoom("team"); err != nil {
		t.Fatal(err)
	}
	alice.write(proto.Send{Type: proto.TypeSend, Room: "team", ID: "t1", Text: "anyone?"})
	if f := alice.answer(); f.Type != proto.TypeError || f.Code != proto.CodeNotJoined || f.Ref != "t1" {
		t.Fatalf("send to a deleted room: %+v", f)
	}

	// Sessions revoked elsewhere: their sockets close with 4003.
	if _, err := ts.st.RevokeUserSessions(aliceID); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-alice.closed:
		if code := websocket.CloseStatus(err); code != proto.CloseRevoked {
			t.Fatalf("alice's socket closed with %d, want %d", code, proto.CloseRevoked)
		}
	case <-time.After(convWait):
		t.Fatal("alice's socket stayed open after her sessions were revoked")
	}
}
