package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"kaiwa/server"
	"kaiwa/server/store"
	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// convWait bounds every wait of these tests: the machine may be busy, and the waits are for
// events, not for speed.
const convWait = 20 * time.Second

// await returns the next frame of the given type, skipping others, within convWait.
func (s *socket) await(typ string) proto.Frame {
	s.t.Helper()
	timeout := time.After(convWait)
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
			s.t.Fatalf("no %q frame within %v", typ, convWait)
		}
	}
}

// answer returns the next ack or error frame: what a send, edit, deletion or read is answered
// with, whichever it is.
func (s *socket) answer() proto.Frame {
	s.t.Helper()
	timeout := time.After(convWait)
	for {
		select {
		case f, ok := <-s.frames:
			if !ok {
				s.t.Fatalf("socket closed waiting for an answer: %v", <-s.closed)
			}
			if f.Type == proto.TypeAck || f.Type == proto.TypeError || f.Type == proto.TypeJoined {
				return f
			}
		case <-timeout:
			s.t.Fatalf("no answer within %v", convWait)
		}
	}
}

// joinRoom joins room and waits for the joined frame, passing over acks.
func (s *socket) joinRoom(room string) proto.Frame {
	s.t.Helper()
	s.write(proto.Join{Type: proto.TypeJoin, Room: room})
	f := s.answer()
	for f.Type == proto.TypeAck {
		f = s.answer() // of sends made before
	}
	if f.Type != proto.TypeJoined || f.Room != room {
		s.t.Fatalf("join %s: %+v", room, f)
	}
	return f
}

// user registers name and returns its id and token.
func (ts *testServer) user(t *testing.T, name string) (id, token string) {
	t.Helper()
	tb := ts.register(t, name)
	return tb.User.ID, tb.AccessToken
}

// errorFrame is what the tests compare of an error frame.
func errorFrame(f proto.Frame) string {
	return f.Type + " " + f.Code + " " + f.Message + " ref=" + f.Ref
}

// TestWSPrivateRoomIndistinguishable checks, path by path, that a private room answers a
// non-member on the socket exactly as a room never created does.
func TestWSPrivateRoomIndistinguishable(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, server.Config{})
	aliceID, aliceToken := ts.user(t, "alice")
	_, bobToken := ts.user(t, "bob")
	if _, err := ts.st.NewRoom(aliceID, "secret", proto.RoomPrivate); err != nil {
		t.Fatal(err)
	}
	alice := ts.connect(t, aliceToken)
	alice.joinRoom("secret")
	alice.write(proto.Send{Type: proto.TypeSend, Room: "secret", ID: "s1", Text: "hidden"})
	if f := alice.answer(); f.Type != proto.TypeAck {
		t.Fatalf("member's send: %+v", f)
	}
	bob := ts.connect(t, bobToken)
	bob.await(proto.TypeHello)
	one := uint64(1)
	paths := []struct {
		name  string
		frame func(room string) any
	}{
		{"join", func(room string) any { return proto.Join{Type: proto.TypeJoin, Room: room} }},
		{"join after", func(room string) any { return proto.Join{Type: proto.TypeJoin, Room: room, After: &one} }},
		{"send", func(room string) any { return proto.Send{Type: proto.TypeSend, Room: room, ID: "x1", Text: "hi"} }},
		{"read", func(room string) any { return proto.Read{Type: proto.TypeRead, Room: room, Seq: 1} }},
		{"edit", func(room string) any {
			return proto.Edit{Type: proto.TypeEdit, Room: room, ID: "x2", Target: 1, Text: "changed"}
		}},
		{"delete", func(room string) any { return proto.Delete{Type: proto.TypeDelete, Room: room, ID: "x3", Target: 1} }},
		{"typing", func(room string) any { return proto.Typing{Type: proto.TypeTyping, Room: room} }},
		{"leave", func(room string) any { return proto.Leave{Type: proto.TypeLeave, Room: room} }},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			bob.t = t
			var got []string
			for _, room := range []string{"secret", "never-made"} {
				bob.write(p.frame(room))
				f := bob.await(proto.TypeError)
				got = append(got, errorFrame(f))
			}
			if got[0] != got[1] {
				t.Fatalf("private room answers %q, a room never created %q", got[0], got[1])
			}
			if p.name == "join" && !strings.Contains(got[0], proto.CodeInvalidRoom) {
				t.Fatalf("join answers %q, want invalid_room", got[0])
			}
			if p.name == "read" && !strings.Contains(got[0], proto.CodeInvalidRoom) {
				t.Fatalf("read answers %q, want invalid_room", got[0])
			}
			// Join well-formed rooms between the cases: 10 bad frames in a row close the socket.
			bob.joinRoom("general")
		})
	}
	// Nothing of the room reached bob, and his marker was not stored.
	if msgs, _, err := ts.st.Page("secret", nil, nil, 10); err != nil || len(msgs) != 1 {
		t.Fatalf("secret holds %d messages (%v), want alice's one", len(msgs), err)
	}
}

// TestWSSendJoinsPublicRoom checks that sending to a public room makes the sender a member,
// and that the sender's sockets learn it from a room frame.
func TestWSSendJoinsPublicRoom(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, server.Config{})
	aliceID, aliceToken := ts.user(t, "alice")
	if _, err := ts.st.NewRoom("", "dev", proto.RoomPublic); err != nil {
		t.Fatal(err)
	}
	if r, err := ts.st.RoomFor(aliceID, "dev"); err != nil || r.Member {
		t.Fatalf("before sending: %+v, %v", r, err)
	}
	alice := ts.connect(t, aliceToken)
	other := ts.connect(t, aliceToken)
	other.await(proto.TypeHello)
	alice.joinRoom("dev")
	alice.write(proto.Send{Type: proto.TypeSend, Room: "dev", ID: "d1", Text: "hello dev"})
	if f := alice.answer(); f.Type != proto.TypeAck || f.Seq != 1 {
		t.Fatalf("send: %+v", f)
	}
	for _, s := range []*socket{alice, other} {
		f := s.await(proto.TypeRoom)
		if f.RoomInfo == nil || f.RoomInfo.Name != "dev" || !f.RoomInfo.Member || f.RoomInfo.Kind != proto.RoomPublic {
			t.Fatalf("room frame: %+v", f.RoomInfo)
		}
	}
	if r, err := ts.st.RoomFor(aliceID, "dev"); err != nil || !r.Member || r.ReadSeq != 1 {
		t.Fatalf("after sending: %+v, %v", r, err)
	}
}

// TestWSReadMarkers checks that a read frame moves the stored marker forward only, clamped, and
// reaches every socket of the user, all sessions; and that a stored message moves its sender's
// marker, which the sender's other sockets learn.
func TestWSReadMarkers(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, server.Config{})
	aliceID, aliceToken := ts.user(t, "alice")
	_, bobToken := ts.user(t, "bob")
	login, err := client.NewAPI(ts.URL, nil).Login(context.Background(), "alice", "password-alice")
	if err != nil {
		t.Fatal(err)
	}
	phone := ts.connect(t, aliceToken)         // session 1
	laptop := ts.connect(t, aliceToken)        // session 1, a second tab
	tablet := ts.connect(t, login.AccessToken) // session 2
	bob := ts.connect(t, bobToken)
	for _, s := range []*socket{phone, laptop, tablet} {
		s.await(proto.TypeHello)
	}
	bob.joinRoom("general")
	for i, text := range []string{"one", "two", "three"} {
		bob.write(proto.Send{Type: proto.TypeSend, Room: "general", ID: "b" + text, Text: text})
		if f := bob.answer(); f.Type != proto.TypeAck || f.Seq != uint64(i+1) {
			t.Fatalf("bob's send: %+v", f)
		}
	}
	for _, tc := range []struct {
		name      string
		seq, want uint64
	}{
		{"forward", 2, 2},
		{"backward is ignored", 1, 2},
		{"past the last seq is clamped", 99, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			phone.write(proto.Read{Type: proto.TypeRead, Room: "general", Seq: tc.seq})
			for _, s := range []*socket{phone, laptop, tablet} {
				s.t = t
				if f := s.await(proto.TypeRead); f.Room != "general" || f.Seq != tc.want {
					t.Fatalf("read frame %+v, want seq %d", f, tc.want)
				}
			}
			if r, err := ts.st.RoomFor(aliceID, "general"); err != nil || r.ReadSeq != tc.want {
				t.Fatalf("stored marker %d (%v), want %d", r.ReadSeq, err, tc.want)
			}
		})
	}
	// A message alice stores moves her marker: her other sockets are told, the sending one
	// has its ack.
	laptop.t, tablet.t, phone.t = t, t, t
	phone.joinRoom("general")
	phone.write(proto.Send{Type: proto.TypeSend, Room: "general", ID: "a1", Text: "mine"})
	ack := phone.answer()
	if ack.Type != proto.TypeAck || ack.Seq != 4 {
		t.Fatalf("alice's send: %+v", ack)
	}
	for _, s := range []*socket{laptop, tablet} {
		if f := s.await(proto.TypeRead); f.Seq != 4 {
			t.Fatalf("read frame after sending %+v, want seq 4", f)
		}
	}
	if r, err := ts.st.RoomFor(aliceID, "general"); err != nil || r.ReadSeq != 4 || r.Unread != 0 {
		t.Fatalf("after sending: %+v, %v", r, err)
	}
}

// TestWSEditsAndDeletions checks the rules of edits and deletions on the socket, their frames
// and their idempotence.
func TestWSEditsAndDeletions(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, server.Config{})
	_, aliceToken := ts.user(t, "alice")
	bobID, bobToken := ts.user(t, "bob")
	carolID, carolToken := ts.user(t, "carol")
	if _, err := ts.st.UpdateUser(carolID, func(u *store.User) { u.Admin = true }); err != nil {
		t.Fatal(err)
	}
	alice := ts.connect(t, aliceToken)
	bob := ts.connect(t, bobToken)
	carol := ts.connect(t, carolToken)
	for _, s := range []*socket{alice, bob, carol} {
		s.joinRoom("general")
	}
	send := func(s *socket, v any) proto.Frame {
		t.Helper()
		s.write(v)
		return s.answer()
	}
	if f := send(alice, proto.Send{Type: proto.TypeSend, Room: "general", ID: "a1", Text: "helo"}); f.Seq != 1 {
		t.Fatalf("send: %+v", f)
	}
	if f := send(bob, proto.Send{Type: proto.TypeSend, Room: "general", ID: "b1", Text: "bob's"}); f.Seq != 2 {
		t.Fatalf("send: %+v", f)
	}
	edit := func(id string, target uint64, text string) proto.Edit {
		return proto.Edit{Type: proto.TypeEdit, Room: "general", ID: id, Target: target, Text: text}
	}
	del := func(id string, target uint64) proto.Delete {
		return proto.Delete{Type: proto.TypeDelete, Room: "general", ID: id, Target: target}
	}
	// The edit: acked, then the message frame to every member.
	if f := send(alice, edit("e1", 1, "  hello  ")); f.Type != proto.TypeAck || f.Seq != 3 || f.ID != "e1" {
		t.Fatalf("edit: %+v", f)
	}
	for _, s := range []*socket{alice, bob} {
		m := s.await(proto.TypeMessage)
		for m.Seq != 3 {
			m = s.await(proto.TypeMessage)
		}
		if m.Kind != proto.KindEdit || m.Target != 1 || m.Text != "hello" || m.From != "alice" {
			t.Fatalf("edit frame: %+v", m)
		}
	}
	// The same id again: the same ack, nothing stored.
	if f := send(alice, edit("e1", 1, "hello")); f.Type != proto.TypeAck || f.Seq != 3 {
		t.Fatalf("edit retried: %+v", f)
	}
	for _, tc := range []struct {
		name string
		s    *socket
		v    any
		code string
	}{
		{"edit of another's message", bob, edit("e2", 1, "mine now"), proto.CodeNotAllowed},
		{"edit of another's message by an admin", carol, edit("e3", 1, "admin"), proto.CodeNotAllowed},
		{"edit of an edit", alice, edit("e4", 3, "again"), proto.CodeInvalidTarget},
		{"edit of no message", alice, edit("e5", 99, "nothing"), proto.CodeInvalidTarget},
		{"edit of seq 0", alice, edit("e6", 0, "nothing"), proto.CodeInvalidTarget},
		{"edit to blank", alice, edit("e7", 1, " \u200b "), proto.CodeEmptyText},
		{"edit too long", alice, edit("e8", 1, strings.Repeat("x", 4001)), proto.CodeTextTooLong},
		{"deletion by someone else", bob, del("d1", 1), proto.CodeNotAllowed},
		{"deletion of an edit", alice, del("d2", 3), proto.CodeInvalidTarget},
		{"edit without an id", alice, edit("", 1, "x"), proto.CodeBadFrame},
		{"edit of a room not joined", alice, proto.Edit{Type: proto.TypeEdit, Room: "nowhere", ID: "e9", Target: 1, Text: "x"}, proto.CodeNotJoined},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.t = t
			if f := send(tc.s, tc.v); f.Type != proto.TypeError || f.Code != tc.code {
				t.Fatalf("answer %+v, want error %s", f, tc.code)
			}
		})
	}
	alice.t, bob.t, carol.t = t, t, t
	// The author deletes: text empty, kind delete; a second deletion finds it deleted.
	if f := send(alice, del("d3", 1)); f.Type != proto.TypeAck || f.Seq != 4 {
		t.Fatalf("deletion: %+v", f)
	}
	m := bob.await(proto.TypeMessage)
	for m.Seq != 4 {
		m = bob.await(proto.TypeMessage)
	}
	if m.Kind != proto.KindDelete || m.Target != 1 || m.Text != "" {
		t.Fatalf("deletion frame: %+v", m)
	}
	for _, tc := range []struct {
		name string
		s    *socket
		v    any
	}{
		{"deletion of a deleted message", carol, del("d4", 1)},
		{"edit of a deleted message", alice, edit("e10", 1, "back")},
	} {
		if f := send(tc.s, tc.v); f.Type != proto.TypeError || f.Code != proto.CodeInvalidTarget {
			t.Fatalf("%s: %+v, want invalid_target", tc.name, f)
		}
	}
	// An admin deletes anyone's message in a public room.
	if f := send(carol, del("d5", 2)); f.Type != proto.TypeAck || f.Seq != 5 {
		t.Fatalf("admin's deletion: %+v", f)
	}
	// In a private room, its creator deletes a member's message.
	if _, err := ts.st.NewRoom(carolID, "crew", proto.RoomPrivate); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.st.UpdateUser(carolID, func(u *store.User) { u.Admin = false }); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.st.AddMember(carolID, "crew", bobID); err != nil {
		t.Fatal(err)
	}
	crewBob, crewCarol := ts.connect(t, bobToken), ts.connect(t, carolToken)
	crewBob.joinRoom("crew")
	crewCarol.joinRoom("crew")
	if f := send(crewBob, proto.Send{Type: proto.TypeSend, Room: "crew", ID: "c1", Text: "oops"}); f.Seq != 1 {
		t.Fatalf("send: %+v", f)
	}
	if f := send(crewCarol, proto.Delete{Type: proto.TypeDelete, Room: "crew", ID: "c2", Target: 1}); f.Type != proto.TypeAck || f.Seq != 2 {
		t.Fatalf("creator's deletion: %+v", f)
	}
	if f := send(crewBob, proto.Send{Type: proto.TypeSend, Room: "crew", ID: "c3", Text: "again"}); f.Seq != 3 {
		t.Fatalf("send: %+v", f)
	}
	if f := send(crewBob, proto.Delete{Type: proto.TypeDelete, Room: "crew", ID: "c4", Target: 1}); f.Code != proto.CodeInvalidTarget {
		t.Fatalf("deletion of a deleted message: %+v", f)
	}
}

// rawSocket reads a socket's frames as the bytes the server wrote, one per line.
type rawSocket struct {
	ws    *websocket.Conn
	lines chan []byte
}

func (ts *testServer) rawConnect(t *testing.T, token string) *rawSocket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), convWait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/ws",
		&websocket.DialOptions{Subprotocols: []string{proto.Subprotocol, proto.BearerProtocol + token}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	r := &rawSocket{ws: ws, lines: make(chan []byte, 10000)}
	go func() {
		defer close(r.lines)
		for {
			_, data, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			sc := bufio.NewScanner(bytes.NewReader(data))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				r.lines <- slices.Clone(sc.Bytes())
			}
		}
	}()
	return r
}

func (r *rawSocket) write(t *testing.T, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if err := r.ws.Write(context.Background(), websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// await waits for a frame of the given type and returns it as written.
func (r *rawSocket) await(t *testing.T, typ string) []byte {
	t.Helper()
	timeout := time.After(convWait)
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				t.Fatalf("socket closed waiting for %q", typ)
			}
			if bytes.HasPrefix(line, []byte(`{"type":"`+typ+`"`)) {
				return line
			}
		case <-timeout:
			t.Fatalf("no %q frame within %v", typ, convWait)
		}
	}
}

// messages returns the next n message frames, as written.
func (r *rawSocket) messages(t *testing.T, n int) [][]byte {
	t.Helper()
	var out [][]byte
	timeout := time.After(convWait)
	for len(out) < n {
		select {
		case line, ok := <-r.lines:
			if !ok {
				t.Fatalf("socket closed after %d of %d messages", len(out), n)
			}
			if bytes.HasPrefix(line, []byte(`{"type":"message"`)) {
				out = append(out, line)
			}
		case <-timeout:
			t.Fatalf("%d of %d messages within %v", len(out), n, convWait)
		}
	}
	return out
}

// TestWSMentionsLiveAndReplayed checks that message frames carry the server's mentions, sorted
// and unique, absent when there are none, and that a replayed frame is the live one, byte for
// byte, for plain messages, edits and deletions alike.
func TestWSMentionsLiveAndReplayed(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, server.Config{})
	_, aliceToken := ts.user(t, "alice")
	ts.user(t, "bob")
	ts.user(t, "carol")
	alice := ts.connect(t, aliceToken)
	alice.joinRoom("general")
	live := ts.rawConnect(t, aliceToken)
	live.write(t, proto.Join{Type: proto.TypeJoin, Room: "general"})
	frames := []any{
		proto.Send{Type: proto.TypeSend, Room: "general", ID: "m1", Text: "hi @carol and @bob, @bob! @nobody mail@bob.example"},
		proto.Send{Type: proto.TypeSend, Room: "general", ID: "m2", Text: "no mention"},
		proto.Edit{Type: proto.TypeEdit, Room: "general", ID: "m3", Target: 2, Text: "now @alice"},
		proto.Delete{Type: proto.TypeDelete, Room: "general", ID: "m4", Target: 1},
	}
	live.await(t, proto.TypeJoined)
	for _, f := range frames {
		alice.write(f)
		if a := alice.answer(); a.Type != proto.TypeAck {
			t.Fatalf("answer %+v", a)
		}
	}
	got := live.messages(t, len(frames))
	wantMentions := []string{`"mentions":["bob","carol"]`, "", `"mentions":["alice"]`, ""}
	for i, line := range got {
		var m proto.Message
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		if m.Seq != uint64(i+1) {
			t.Fatalf("frame %d: %s", i, line)
		}
		if want := wantMentions[i]; want == "" && bytes.Contains(line, []byte(`"mentions"`)) ||
			want != "" && !bytes.Contains(line, []byte(want)) {
			t.Fatalf("frame %s, want mentions %q", line, want)
		}
	}
	zero := uint64(0)
	replay := ts.rawConnect(t, aliceToken)
	replay.write(t, proto.Join{Type: proto.TypeJoin, Room: "general", After: &zero})
	again := replay.messages(t, len(frames))
	for i := range got {
		if !bytes.Equal(got[i], again[i]) {
			t.Errorf("seq %d live:\n%s\nreplayed:\n%s", i+1, got[i], again[i])
		}
	}
}

// TestWSOldClient checks that a client knowing only the frames of §3–§4 still chats: it sends
// join and send, decodes only the fields it knows, and passes over frame types it does not.
func TestWSOldClient(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, server.Config{})
	_, oldToken := ts.user(t, "old")
	_, newToken := ts.user(t, "new")
	old := ts.rawConnect(t, oldToken)
	modern := ts.connect(t, newToken)
	modern.joinRoom("general")
	old.write(t, map[string]any{"type": "join", "room": "general"})
	old.write(t, map[string]any{"type": "send", "room": "general", "id": "o1", "text": "hello @new"})
	// A §4 message as an old client decodes it.
	type oldFrame struct {
		Type, Room, ID, From, Text, Code string
		Seq                              uint64
	}
	known := map[string]bool{"hello": true, "joined": true, "message": true, "ack": true, "presence": true, "typing": true, "error": true}
	var acked, gotOwn, gotReply bool
	replied := false
	timeout := time.After(convWait)
	for !(acked && gotOwn && gotReply) {
		var line []byte
		select {
		case l, ok := <-old.lines:
			if !ok {
				t.Fatal("the old client's socket closed")
			}
			line = l
		case <-timeout:
			t.Fatalf("old client: acked %v, own message %v, reply %v", acked, gotOwn, gotReply)
		}
		var f oldFrame
		if err := json.Unmarshal(line, &f); err != nil {
			t.Fatalf("frame %s: %v", line, err)
		}
		if !known[f.Type] {
			continue // what an old client does with what it does not know
		}
		switch {
		case f.Type == "error":
			t.Fatalf("old client got an error: %s", line)
		case f.Type == "ack" && f.ID == "o1":
			acked = true
		case f.Type == "message" && f.ID == "o1" && f.Text == "hello @new":
			gotOwn = true
		case f.Type == "message" && f.From == "new" && f.Text == "hi old":
			gotReply = true
		}
		if gotOwn && !replied {
			replied = true
			// The other user uses §7 meanwhile: an edit, a read marker.
			m := modern.await(proto.TypeMessage)
			modern.write(proto.Read{Type: proto.TypeRead, Room: "general", Seq: m.Seq})
			modern.write(proto.Send{Type: proto.TypeSend, Room: "general", ID: "n1", Text: "hi old"})
			modern.write(proto.Edit{Type: proto.TypeEdit, Room: "general", ID: "n2", Target: m.Seq + 1, Text: "hi, old"})
		}
	}
}

// call makes an authenticated JSON request to the API and returns its status and body.
func (ts *testServer) call(t *testing.T, method, path, token string, body any) (int, string) {
	t.Helper()
	var in io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		in = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, ts.URL+path, in)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// until returns the frames received up to the first for which done is true, that one included.
func (s *socket) until(done func(proto.Frame) bool) []proto.Frame {
	s.t.Helper()
	var seen []proto.Frame
	timeout := time.After(convWait)
	for {
		select {
		case f, ok := <-s.frames:
			if !ok {
				s.t.Fatalf("socket closed: %v", <-s.closed)
			}
			if seen = append(seen, f); done(f) {
				return seen
			}
		case <-timeout:
			s.t.Fatalf("not done within %v", convWait)
		}
	}
}

// roomFrame waits for the room frame of a room and returns its room object.
func (s *socket) roomFrame(room string) proto.Room {
	s.t.Helper()
	for {
		if f := s.await(proto.TypeRoom); f.RoomInfo != nil && f.RoomInfo.Name == room {
			return *f.RoomInfo
		} else if f.RoomInfo == nil {
			s.t.Fatalf("room frame without a room: %+v", f)
		}
	}
}

// TestWSRoomChanges checks that membership changes made over HTTP reach every socket of every
// user concerned as room frames, and that a member removed from a private room gets nothing
// more from it on a socket that had joined it.
func TestWSRoomChanges(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, server.Config{})
	_, aliceToken := ts.user(t, "alice")
	_, bobToken := ts.user(t, "bob")
	_, carolToken := ts.user(t, "carol")
	alice, aliceToo := ts.connect(t, aliceToken), ts.connect(t, aliceToken)
	bob, carol := ts.connect(t, bobToken), ts.connect(t, carolToken)
	for _, s := range []*socket{alice, aliceToo, bob, carol} {
		s.joinRoom("general")
	}
	members := func(r proto.Room) string { return strings.Join(r.Members, ",") }

	if status, body := ts.call(t, "POST", "/api/rooms", aliceToken, map[string]string{"name": "crew", "kind": "private"}); status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	for _, s := range []*socket{alice, aliceToo} {
		if r := s.roomFrame("crew"); !r.Member || r.Kind != proto.RoomPrivate || members(r) != "alice" {
			t.Fatalf("room frame after creating: %+v", r)
		}
	}
	alice.joinRoom("crew")

	if status, body := ts.call(t, "POST", "/api/rooms/crew/members", aliceToken, proto.UserRef{User: "bob"}); status != http.StatusNoContent {
		t.Fatalf("add bob: %d %s", status, body)
	}
	for name, s := range map[string]*socket{"alice": alice, "alice's other socket": aliceToo, "bob": bob} {
		if r := s.roomFrame("crew"); !r.Member || members(r) != "alice,bob" {
			t.Fatalf("%s's room frame after adding bob: %+v", name, r)
		}
	}
	bob.joinRoom("crew")
	alice.write(proto.Send{Type: proto.TypeSend, Room: "crew", ID: "c1", Text: "welcome"})
	if m := bob.await(proto.TypeMessage); m.Room != "crew" || m.ID != "c1" {
		t.Fatalf("bob got %+v", m)
	}

	if status, body := ts.call(t, "DELETE", "/api/rooms/crew/members/bob", aliceToken, nil); status != http.StatusNoContent {
		t.Fatalf("remove bob: %d %s", status, body)
	}
	if r := bob.roomFrame("crew"); r.Member || len(r.Members) != 0 || r.Kind != proto.RoomPrivate || r.ReadSeq != 0 {
		t.Fatalf("bob's room frame after his removal: %+v", r)
	}
	for _, s := range []*socket{alice, aliceToo} {
		if r := s.roomFrame("crew"); !r.Member || members(r) != "alice" {
			t.Fatalf("alice's room frame after removing bob: %+v", r)
		}
	}
	// Bob's socket gets nothing more from the room: a message to it, then one to general,
	// which bob must see without the first before it.
	alice.write(proto.Send{Type: proto.TypeSend, Room: "crew", ID: "c2", Text: "bob is gone"})
	alice.write(proto.Send{Type: proto.TypeSend, Room: "general", ID: "g1", Text: "hello all"})
	if m := bob.await(proto.TypeMessage); m.Room != "general" || m.ID != "g1" {
		t.Fatalf("after his removal bob got %+v", m)
	}
	bob.write(proto.Send{Type: proto.TypeSend, Room: "crew", ID: "b1", Text: "still here?"})
	if f := bob.answer(); f.Type != proto.TypeError || f.Code != proto.CodeInvalidRoom {
		t.Fatalf("bob's send after his removal: %+v", f)
	}
	bob.write(proto.Join{Type: proto.TypeJoin, Room: "crew"})
	if f := bob.answer(); f.Type != proto.TypeError || f.Code != proto.CodeInvalidRoom {
		t.Fatalf("bob's join after his removal: %+v", f)
	}

	// Leaving a public room: a room frame with member false; the socket may still read it.
	if _, err := ts.st.NewRoom("", "dev", proto.RoomPublic); err != nil {
		t.Fatal(err)
	}
	if status, body := ts.call(t, "POST", "/api/rooms/dev/members", bobToken, proto.UserRef{User: "bob"}); status != http.StatusNoContent {
		t.Fatalf("bob joins dev: %d %s", status, body)
	}
	if r := bob.roomFrame("dev"); !r.Member || len(r.Members) != 0 {
		t.Fatalf("bob's room frame after joining dev: %+v", r)
	}
	bob.joinRoom("dev")
	if status, body := ts.call(t, "DELETE", "/api/rooms/dev/members/bob", bobToken, nil); status != http.StatusNoContent {
		t.Fatalf("bob leaves dev: %d %s", status, body)
	}
	if r := bob.roomFrame("dev"); r.Member {
		t.Fatalf("bob's room frame after leaving dev: %+v", r)
	}
	alice.joinRoom("dev")
	alice.write(proto.Send{Type: proto.TypeSend, Room: "dev", ID: "d1", Text: "public"})
	if m := bob.await(proto.TypeMessage); m.Room != "dev" || m.ID != "d1" {
		t.Fatalf("bob, reading dev, got %+v", m)
	}

	// A dm: both users learn of it, nobody else.
	status, body := ts.call(t, "POST", "/api/dms", carolToken, proto.UserRef{User: "bob"})
	if status != http.StatusCreated {
		t.Fatalf("dm: %d %s", status, body)
	}
	var created proto.RoomBody
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	if f := carol.await(proto.TypeRoom); f.RoomInfo.Name != created.Room.Name {
		t.Fatalf("carol's first room frame: %+v", f.RoomInfo)
	}
	for name, s := range map[string]*socket{"bob": bob} {
		if r := s.roomFrame(created.Room.Name); !r.Member || r.Kind != proto.RoomDM || members(r) != "bob,carol" {
			t.Fatalf("%s's room frame of the dm: %+v", name, r)
		}
	}
	// Neither carol, never concerned by crew, nor alice, not in the dm, learnt more: everything
	// queued to them before a message sent after the dm holds no other room frame.
	alice.write(proto.Send{Type: proto.TypeSend, Room: "general", ID: "g2", Text: "last"})
	for name, s := range map[string]*socket{"alice": alice, "alice's other socket": aliceToo, "carol": carol} {
		for _, f := range s.until(func(f proto.Frame) bool { return f.Type == proto.TypeMessage && f.ID == "g2" }) {
			if f.Type != proto.TypeRoom {
				continue
			}
			if name != "carol" && f.RoomInfo.Name == "dev" && f.RoomInfo.Member {
				continue // alice's send to dev made her a member
			}
			t.Errorf("%s got a room frame of %+v", name, f.RoomInfo)
		}
	}
}

// TestWSReadFlood checks that read frames, each a stored write, are limited per connection:
// past the burst they are answered rate_limited, the marker stays right and the socket open.
func TestWSReadFlood(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, server.Config{})
	aliceID, aliceToken := ts.user(t, "alice")
	alice := ts.connect(t, aliceToken)
	alice.joinRoom("general")
	alice.write(proto.Send{Type: proto.TypeSend, Room: "general", ID: "a1", Text: "one"})
	if f := alice.answer(); f.Type != proto.TypeAck {
		t.Fatalf("send: %+v", f)
	}
	const n = 400
	start := time.Now()
	for range n {
		alice.write(proto.Read{Type: proto.TypeRead, Room: "general", Seq: 1})
	}
	reads, limited := 0, 0
	for reads+limited < n {
		f := alice.until(func(f proto.Frame) bool {
			return f.Type == proto.TypeRead || f.Type == proto.TypeError
		})
		switch last := f[len(f)-1]; {
		case last.Type == proto.TypeRead && last.Seq == 1:
			reads++
		case last.Type == proto.TypeError && last.Code == proto.CodeRateLimited:
			limited++
		default:
			t.Fatalf("answer to a read: %+v", last)
		}
	}
	// At most the burst of 200 and 10 a second since.
	if limited == 0 || float64(reads) > 200+10*time.Since(start).Seconds()+2 {
		t.Fatalf("%d reads stored, %d rate_limited: the limit did not hold", reads, limited)
	}
	if r, err := ts.st.RoomFor(aliceID, "general"); err != nil || r.ReadSeq != 1 {
		t.Fatalf("marker %+v, %v", r, err)
	}
	alice.write(proto.Send{Type: proto.TypeSend, Room: "general", ID: "a2", Text: "still open"})
	if f := alice.answer(); f.Type != proto.TypeAck {
		t.Fatalf("send after the flood: %+v", f)
	}
}
