package server_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"kaiwa/server"
	"kaiwa/server/store"
	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// TestUserConnLimit: a user with UserConnLimit open sockets gets 429 before the upgrade for one
// more; other users do not, an invalid token still gets its upgrade and 4002, and a socket
// closed makes room for a new one.
func TestUserConnLimit(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, server.Config{UserConnLimit: 3})
	tokens := mintUsers(t, ts.st, "limit", 2)
	var open []*socket
	for range 3 {
		s := ts.connect(t, tokens[0])
		s.next(proto.TypeHello)
		open = append(open, s)
	}
	_, resp, err := ts.dial(t, proto.Subprotocol, proto.BearerProtocol+tokens[0])
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("fourth socket: err %v, resp %v; want 429", err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), proto.CodeTooManyConnections) {
		t.Errorf("429 body %s, want code %s", body, proto.CodeTooManyConnections)
	}
	other := ts.connect(t, tokens[1])
	other.next(proto.TypeHello)
	bad, _, err := ts.dial(t, proto.Subprotocol, proto.BearerProtocol+"not-a-token")
	if err != nil {
		t.Fatalf("invalid token: %v; want the upgrade and 4002", err)
	}
	if code := bad.closeCode(); code != proto.CloseUnauthorized {
		t.Fatalf("invalid token closed with %d, want 4002", code)
	}
	open[0].ws.CloseNow()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, _, err := ts.dial(t, proto.Subprotocol, proto.BearerProtocol+tokens[0])
		if err == nil {
			s.next(proto.TypeHello)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket again within 10 s after one closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRoomsLeaveMemory: a room stays in the hub only while it has members (kaiwa_rooms), and
// one loaded again sees what was sent meanwhile.
func TestRoomsLeaveMemory(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, server.Config{})
	tokens := mintUsers(t, ts.st, "mem", 2)
	const rooms = 20
	for i := range rooms {
		if _, err := ts.st.CreateRoom("r" + strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	s := ts.connect(t, tokens[0])
	for i := range rooms {
		s.write(proto.Join{Type: proto.TypeJoin, Room: "r" + strconv.Itoa(i)})
		s.next(proto.TypeJoined)
	}
	waitMetric(t, ts.URL, "kaiwa_rooms", rooms)
	for i := range rooms / 2 {
		s.write(proto.Frame{Type: proto.TypeLeave, Room: "r" + strconv.Itoa(i)})
	}
	waitMetric(t, ts.URL, "kaiwa_rooms", rooms/2)
	// A send, then the last member leaves: the room goes, its message stays.
	s.write(proto.Send{Type: proto.TypeSend, Room: "r19", ID: "m1", Text: "kept"})
	s.next(proto.TypeAck)
	s.ws.CloseNow()
	waitMetric(t, ts.URL, "kaiwa_rooms", 0)

	again := ts.connect(t, tokens[1])
	zero := uint64(0)
	again.write(proto.Join{Type: proto.TypeJoin, Room: "r19", After: &zero})
	if j := again.next(proto.TypeJoined); j.LastSeq != 1 {
		t.Fatalf("joined %+v, want last_seq 1", j)
	}
	if m := again.next(proto.TypeMessage); m.Seq != 1 || m.Text != "kept" {
		t.Fatalf("message %+v", m)
	}
	again.write(proto.Send{Type: proto.TypeSend, Room: "r19", ID: "m2", Text: "next"})
	if m := again.next(proto.TypeMessage); m.Seq != 2 {
		t.Fatalf("message %+v, want seq 2", m)
	}
	waitMetric(t, ts.URL, "kaiwa_rooms", 1)
}

// TestAdminDeleteRoom: DELETE /api/admin/rooms/{room} deletes a room and its history at once;
// its members get nothing more from it. Not for general, not for non-admins, 404 when unknown.
func TestAdminDeleteRoom(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, server.Config{})
	tokens := mintUsers(t, ts.st, "del", 2)
	admin, err := ts.st.UserByName("del0000")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.st.UpdateUser(admin.ID, func(u *store.User) { u.Admin = true }); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.st.CreateRoom("doomed"); err != nil {
		t.Fatal(err)
	}
	member := ts.connect(t, tokens[1])
	member.write(proto.Join{Type: proto.TypeJoin, Room: "doomed"})
	member.next(proto.TypeJoined)
	member.write(proto.Join{Type: proto.TypeJoin, Room: "general"})
	member.next(proto.TypeJoined)
	member.write(proto.Send{Type: proto.TypeSend, Room: "doomed", ID: "d1", Text: "soon gone"})
	member.next(proto.TypeMessage)

	del := func(token, room string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("DELETE", ts.URL+"/api/admin/rooms/"+room, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, tc := range []struct {
		name, token, room string
		status            int
		code              string
	}{
		{"not an admin", tokens[1], "doomed", http.StatusForbidden, proto.CodeForbidden},
		{"general", tokens[0], "general", http.StatusForbidden, proto.CodeForbidden},
		{"unknown room", tokens[0], "nope", http.StatusNotFound, proto.CodeNotFound},
		{"without a token", "", "doomed", http.StatusUnauthorized, proto.CodeUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := del(tc.token, tc.room)
			if status != tc.status || !strings.Contains(body, `"code":"`+tc.code+`"`) {
				t.Fatalf("%d %s, want %d %s", status, body, tc.status, tc.code)
			}
		})
	}
	if status, body := del(tokens[0], "doomed"); status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", status, body)
	}
	if _, err := ts.st.Room("doomed"); err == nil {
		t.Fatal("the room is still in the store")
	}
	_, err = client.NewAPI(ts.URL, nil).Messages(context.Background(), tokens[1], "doomed", client.PageQuery{})
	if !client.IsCode(err, proto.CodeNotFound) {
		t.Errorf("history of a deleted room: %v, want not_found", err)
	}
	// The member's socket stays open and gets nothing more from the room.
	member.write(proto.Send{Type: proto.TypeSend, Room: "doomed", ID: "d2", Text: "anyone?"})
	member.write(proto.Send{Type: proto.TypeSend, Room: "general", ID: "g1", Text: "still here"})
	for {
		f := member.next(proto.TypeError)
		if f.Ref == "d2" {
			if f.Code != proto.CodeNotJoined {
				t.Fatalf("send to the deleted room: %+v", f)
			}
			break
		}
	}
	for {
		f := <-member.frames
		if f.Room == "doomed" {
			t.Fatalf("frame from the deleted room: %+v", f)
		}
		if f.Type == proto.TypeMessage && f.ID == "g1" {
			break
		}
	}
	// A room made again under that name starts afresh.
	if _, err := ts.st.CreateRoom("doomed"); err != nil {
		t.Fatal(err)
	}
	member.write(proto.Join{Type: proto.TypeJoin, Room: "doomed"})
	if j := member.next(proto.TypeJoined); j.LastSeq != 0 {
		t.Fatalf("joined the new room: %+v, want last_seq 0", j)
	}
}
