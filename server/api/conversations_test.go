package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"kaiwa/server/auth"
	"kaiwa/server/store"
	"kaiwa/server/store/storetest"
	"kaiwa/shared/proto"
)

// membershipLog records the membership changes the store tells its Observer of.
type membershipLog struct{ storetest.Recorder }

// take returns the changes since the last take as "room: id id ..." with ids sorted.
func (l *membershipLog) take() []string {
	var calls []string
	for _, line := range l.Take() {
		if change, ok := strings.CutPrefix(line, "members "); ok {
			calls = append(calls, change)
		}
	}
	return calls
}

// newConvServer is newAPIServer with the membership changes recorded on their way to the hub.
func newConvServer(t *testing.T) (*testServer, *membershipLog) {
	t.Helper()
	ts := newAPIServer(t, nil, auth.ThrottleConfig{})
	log := &membershipLog{storetest.Recorder{Next: ts.hub}}
	ts.st.SetObserver(log)
	return ts, log
}

func TestRoomKindsAndMembership(t *testing.T) {
	t.Parallel()
	ts, hook := newConvServer(t)
	alice, _ := signup(t, ts.URL, "alice")
	bob, _ := signup(t, ts.URL, "bob")
	carol, _ := signup(t, ts.URL, "carol")
	tok := map[string]string{"alice": alice.AccessToken, "bob": bob.AccessToken, "carol": carol.AccessToken}
	id := map[string]string{"alice": alice.User.ID, "bob": bob.User.ID, "carol": carol.User.ID}
	call := func(who, method, path, body string) response {
		t.Helper()
		return do(t, ts.URL, request{method: method, path: path, body: body, token: tok[who]})
	}
	roomOf := func(who, room string) proto.Room {
		t.Helper()
		var rb proto.RoomBody
		decodeBody(t, call(who, "GET", "/api/rooms/"+room, ""), http.StatusOK, &rb)
		return rb.Room
	}

	var rb proto.RoomBody
	decodeBody(t, call("alice", "POST", "/api/rooms", `{"name":"team","kind":"private"}`), http.StatusCreated, &rb)
	if r := rb.Room; r.Kind != proto.RoomPrivate || !r.Member || !slices.Equal(r.Members, []string{"alice"}) || !r.LastTS.Equal(r.CreatedAt) {
		t.Errorf("created private room: %+v", r)
	}
	// An old client names only the room: a public one.
	resp := call("bob", "POST", "/api/rooms", `{"name":"pub"}`)
	var pub proto.RoomBody
	decodeBody(t, resp, http.StatusCreated, &pub)
	if r := pub.Room; r.Kind != proto.RoomPublic || !r.Member || r.Members != nil || !bytes.Contains(resp.body, []byte(`"last_seq":0`)) {
		t.Errorf("created public room: %s", resp.body)
	}
	if got := hook.take(); !slices.Equal(got, []string{"team: " + id["alice"], "pub: " + id["bob"]}) {
		t.Errorf("hook after creations: %q", got)
	}
	wantError(t, call("alice", "POST", "/api/rooms", `{"name":"x","kind":"secret"}`), http.StatusBadRequest, proto.CodeBadRequest)
	wantError(t, call("alice", "POST", "/api/rooms", `{"name":"dm-mine"}`), http.StatusBadRequest, proto.CodeInvalidRoom)

	steps := []struct {
		name, who, method, path, body string
		status                        int
		code                          string
		hook                          []string
	}{
		{"member adds to private", "alice", "POST", "/api/rooms/team/members", `{"user":"bob"}`, 204, "", []string{"team: " + id["alice"] + " " + id["bob"]}},
		{"again changes nothing", "alice", "POST", "/api/rooms/team/members", `{"user":"Bob"}`, 204, "", nil},
		{"new member adds another", "bob", "POST", "/api/rooms/team/members", `{"user":"carol"}`, 204, "", []string{"team: " + id["alice"] + " " + id["bob"] + " " + id["carol"]}},
		{"unknown user", "bob", "POST", "/api/rooms/team/members", `{"user":"nobody"}`, 404, proto.CodeNotFound, nil},
		{"not the creator removes", "bob", "DELETE", "/api/rooms/team/members/carol", "", 403, proto.CodeForbidden, nil},
		{"the creator removes", "alice", "DELETE", "/api/rooms/team/members/carol", "", 204, "", []string{"team: " + id["alice"] + " " + id["bob"] + " " + id["carol"]}},
		{"join public", "carol", "POST", "/api/rooms/pub/members", `{"user":"carol"}`, 204, "", []string{"pub: " + id["carol"]}},
		{"add another to public", "carol", "POST", "/api/rooms/pub/members", `{"user":"alice"}`, 403, proto.CodeForbidden, nil},
		{"leave public", "carol", "DELETE", "/api/rooms/pub/members/carol", "", 204, "", []string{"pub: " + id["carol"]}},
		{"leave general", "carol", "DELETE", "/api/rooms/general/members/carol", "", 403, proto.CodeForbidden, nil},
		{"bad body", "alice", "POST", "/api/rooms/team/members", `{`, 400, proto.CodeBadRequest, nil},
		{"bad room name", "alice", "POST", "/api/rooms/Team/members", `{"user":"bob"}`, 400, proto.CodeInvalidRoom, nil},
	}
	for _, s := range steps {
		resp := call(s.who, s.method, s.path, s.body)
		if s.code != "" {
			wantError(t, resp, s.status, s.code)
		} else if resp.StatusCode != s.status {
			t.Errorf("%s: status %d, want %d (%s)", s.name, resp.StatusCode, s.status, resp.body)
		}
		if got := hook.take(); !slices.Equal(got, s.hook) {
			t.Errorf("%s: hook %q, want %q", s.name, got, s.hook)
		}
	}
	if r := roomOf("bob", "team"); !slices.Equal(r.Members, []string{"alice", "bob"}) {
		t.Errorf("team members = %v", r.Members)
	}
	if r := roomOf("carol", "pub"); r.Member || r.ReadSeq != 0 {
		t.Errorf("carol left pub: %+v", r)
	}

	// Unread and mentions, and the list as each user sees it.
	for i, text := range []string{"one", "hey @alice", "three"} {
		if _, _, err := ts.st.Append("team", id["bob"], "bob", fmt.Sprint("t", i), text); err != nil {
			t.Fatal(err)
		}
	}
	if r := roomOf("alice", "team"); r.LastSeq != 3 || r.ReadSeq != 0 || r.Unread != 3 || r.Mentions != 1 || !r.LastTS.After(r.CreatedAt) && !r.LastTS.Equal(r.CreatedAt) {
		t.Errorf("alice in team: %+v", r)
	}
	if r := roomOf("bob", "team"); r.ReadSeq != 3 || r.Unread != 0 {
		t.Errorf("bob in team: %+v", r)
	}
	var list proto.RoomList
	decodeBody(t, call("alice", "GET", "/api/rooms", ""), http.StatusOK, &list)
	var names []string
	for _, r := range list.Rooms {
		names = append(names, r.Name)
	}
	if !slices.Equal(names[:1], []string{"team"}) || len(names) != 3 {
		t.Errorf("alice's rooms = %v, want team (newest) then pub and general", names)
	}
	decodeBody(t, call("carol", "GET", "/api/rooms", ""), http.StatusOK, &list)
	for _, r := range list.Rooms {
		if r.Name == "team" {
			t.Errorf("carol sees team: %+v", r)
		}
	}
}

func TestDMs(t *testing.T) {
	t.Parallel()
	ts, hook := newConvServer(t)
	alice, _ := signup(t, ts.URL, "alice")
	bob, _ := signup(t, ts.URL, "bob")
	call := func(tb proto.TokenBody, method, path, body string) response {
		t.Helper()
		return do(t, ts.URL, request{method: method, path: path, body: body, token: tb.AccessToken})
	}
	var first, second proto.RoomBody
	decodeBody(t, call(alice, "POST", "/api/dms", `{"user":"bob"}`), http.StatusCreated, &first)
	if r := first.Room; r.Kind != proto.RoomDM || !r.Member || !slices.Equal(r.Members, []string{"alice", "bob"}) ||
		!strings.HasPrefix(r.Name, "dm-") || len(r.Name) != 19 || !proto.ValidRoomName(r.Name) {
		t.Errorf("dm: %+v", r)
	}
	if got := hook.take(); !slices.Equal(got, []string{first.Room.Name + ": " + alice.User.ID + " " + bob.User.ID}) {
		t.Errorf("hook: %q", got)
	}
	decodeBody(t, call(bob, "POST", "/api/dms", `{"user":"alice"}`), http.StatusOK, &second)
	if second.Room.Name != first.Room.Name {
		t.Errorf("bob's dm %q, alice's %q", second.Room.Name, first.Room.Name)
	}
	wantError(t, call(alice, "POST", "/api/dms", `{"user":"alice"}`), http.StatusBadRequest, proto.CodeBadRequest)
	wantError(t, call(alice, "POST", "/api/dms", `{"user":"nobody"}`), http.StatusNotFound, proto.CodeNotFound)
	wantError(t, call(alice, "POST", "/api/dms", `{"user":"no body!"}`), http.StatusNotFound, proto.CodeNotFound)
	dm := "/api/rooms/" + first.Room.Name
	wantError(t, call(alice, "POST", dm+"/members", `{"user":"alice"}`), http.StatusForbidden, proto.CodeForbidden)
	wantError(t, call(alice, "DELETE", dm+"/members/alice", ""), http.StatusForbidden, proto.CodeForbidden)
	if got := hook.take(); got != nil {
		t.Errorf("hook after refusals: %q", got)
	}
}

// TestHiddenRoomsAreMissing proves, path by path, that a private room and a dm answer a
// non-member byte for byte as a room that was never created.
func TestHiddenRoomsAreMissing(t *testing.T) {
	t.Parallel()
	ts, _ := newConvServer(t)
	alice, _ := signup(t, ts.URL, "alice")
	bob, _ := signup(t, ts.URL, "bob")
	carol, _ := signup(t, ts.URL, "carol")
	decodeBody(t, do(t, ts.URL, request{method: "POST", path: "/api/rooms", body: `{"name":"secret","kind":"private"}`, token: alice.AccessToken}), http.StatusCreated, &proto.RoomBody{})
	var dm proto.RoomBody
	decodeBody(t, do(t, ts.URL, request{method: "POST", path: "/api/dms", body: `{"user":"bob"}`, token: alice.AccessToken}), http.StatusCreated, &dm)
	if _, _, err := ts.st.Append("secret", alice.User.ID, "alice", "s1", "hidden"); err != nil {
		t.Fatal(err)
	}
	paths := []struct{ method, path, body string }{
		{"GET", "/api/rooms/%s", ""},
		{"GET", "/api/rooms/%s/messages", ""},
		{"GET", "/api/rooms/%s/messages?after=0", ""},
		{"GET", "/api/rooms/%s/messages?before=5&limit=2", ""},
		{"POST", "/api/rooms/%s/members", `{"user":"carol"}`},
		{"POST", "/api/rooms/%s/members", `{"user":"alice"}`},
		{"POST", "/api/rooms/%s/members", `{"user":"nobody"}`},
		{"DELETE", "/api/rooms/%s/members/carol", ""},
		{"DELETE", "/api/rooms/%s/members/alice", ""},
		{"DELETE", "/api/rooms/%s/members/nobody", ""},
	}
	for _, p := range paths {
		t.Run(p.method+" "+p.path+" "+p.body, func(t *testing.T) {
			never := do(t, ts.URL, request{method: p.method, path: fmt.Sprintf(p.path, "never-made"), body: p.body, token: carol.AccessToken})
			wantError(t, never, http.StatusNotFound, proto.CodeNotFound)
			for _, room := range []string{"secret", dm.Room.Name} {
				got := do(t, ts.URL, request{method: p.method, path: fmt.Sprintf(p.path, room), body: p.body, token: carol.AccessToken})
				if got.StatusCode != never.StatusCode || !bytes.Equal(got.body, never.body) || !slices.Equal(headerNames(got), headerNames(never)) {
					t.Errorf("%s: %d %s %v, a missing room: %d %s %v", room, got.StatusCode, got.body, headerNames(got), never.StatusCode, never.body, headerNames(never))
				}
			}
		})
	}
	var list proto.RoomList
	decodeBody(t, do(t, ts.URL, request{method: "GET", path: "/api/rooms", token: carol.AccessToken}), http.StatusOK, &list)
	if len(list.Rooms) != 1 || list.Rooms[0].Name != store.DefaultRoom {
		t.Errorf("carol's rooms = %+v", list.Rooms)
	}
	// Members still read them.
	var page proto.MessagePage
	decodeBody(t, do(t, ts.URL, request{method: "GET", path: "/api/rooms/secret/messages", token: alice.AccessToken}), http.StatusOK, &page)
	if len(page.Messages) != 1 || page.Messages[0].Text != "hidden" {
		t.Errorf("alice's history of secret: %+v", page)
	}
	decodeBody(t, do(t, ts.URL, request{method: "GET", path: "/api/rooms/" + dm.Room.Name, token: bob.AccessToken}), http.StatusOK, &proto.RoomBody{})
}

// headerNames lists the header names and values that could tell two answers apart, besides
// Date.
func headerNames(r response) []string {
	var out []string
	for k, v := range r.Header {
		if k != "Date" {
			out = append(out, k+": "+strings.Join(v, ","))
		}
	}
	slices.Sort(out)
	return out
}

func TestHistoryAppliesEditsAndMentions(t *testing.T) {
	t.Parallel()
	ts, _ := newConvServer(t)
	alice, _ := signup(t, ts.URL, "alice")
	signup(t, ts.URL, "bob")
	reqs := []store.AppendRequest{
		{Text: "hello @bob and @Bob and @nobody"},
		{Text: "typo"},
		{Text: "gone"},
		{Kind: proto.KindEdit, Target: 2, Text: "fixed @alice"},
		{Kind: proto.KindDelete, Target: 3},
	}
	for i := range reqs {
		reqs[i].Room, reqs[i].UserID, reqs[i].From, reqs[i].ClientID = store.DefaultRoom, alice.User.ID, "alice", fmt.Sprint("c", i)
	}
	res, err := ts.st.AppendBatch(reqs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	resp := do(t, ts.URL, request{method: "GET", path: "/api/rooms/general/messages", token: alice.AccessToken})
	var page proto.MessagePage
	decodeBody(t, resp, http.StatusOK, &page)
	if len(page.Messages) != 5 {
		t.Fatalf("history: %s", resp.body)
	}
	m := page.Messages
	if !slices.Equal(m[0].Mentions, []string{"bob"}) || m[0].EditedAt != nil || m[0].Kind != "" {
		t.Errorf("plain with mentions: %+v", m[0])
	}
	if m[1].Text != "fixed @alice" || m[1].EditedAt == nil || !slices.Equal(m[1].Mentions, []string{"alice"}) {
		t.Errorf("edited: %+v", m[1])
	}
	if m[2].Text != "" || !m[2].Deleted {
		t.Errorf("deleted: %+v", m[2])
	}
	if m[3].Kind != proto.KindEdit || m[3].Target != 2 || m[4].Kind != proto.KindDelete || m[4].Target != 3 {
		t.Errorf("edit and deletion entries: %+v %+v", m[3], m[4])
	}
	for _, field := range []string{`"mentions":[]`, `"edited_at":null`, `"deleted":false`, `"kind":""`, `"target":0`} {
		if bytes.Contains(resp.body, []byte(field)) {
			t.Errorf("history carries %s: absent fields must be left out", field)
		}
	}
}

func TestUserSearch(t *testing.T) {
	t.Parallel()
	ts, _ := newConvServer(t)
	alice, _ := signup(t, ts.URL, "alice")
	for _, n := range []string{"albert", "bob"} {
		signup(t, ts.URL, n)
	}
	for i := range 25 {
		if _, err := ts.st.CreateUser(fmt.Sprintf("zed%02d", i), "x", false); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"al", []string{"albert", "alice"}},
		{"AL", []string{"albert", "alice"}},
		{"bob", []string{"bob"}},
		{"q", []string{}},
		{strings.Repeat("a", 40), []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.prefix, func(t *testing.T) {
			var list proto.UserList
			decodeBody(t, do(t, ts.URL, request{method: "GET", path: "/api/users?prefix=" + tc.prefix, token: alice.AccessToken}), http.StatusOK, &list)
			got := []string{}
			for _, u := range list.Users {
				got = append(got, u.Name)
				if u.ID == "" {
					t.Errorf("no id: %+v", u)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("users = %v, want %v", got, tc.want)
			}
		})
	}
	var list proto.UserList
	decodeBody(t, do(t, ts.URL, request{method: "GET", path: "/api/users?prefix=zed", token: alice.AccessToken}), http.StatusOK, &list)
	if len(list.Users) != proto.UserSearchMax || list.Users[0].Name != "zed00" {
		t.Errorf("zed: %d users from %+v", len(list.Users), list.Users[0])
	}
}
