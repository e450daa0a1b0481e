package store_test

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

// users creates users by name and returns their ids.
func users(t *testing.T, st *store.Store, names ...string) map[string]string {
	t.Helper()
	ids := map[string]string{}
	for _, n := range names {
		u, err := st.CreateUser(n, "hash", n == "admin")
		if err != nil {
			t.Fatal(err)
		}
		ids[n] = u.ID
	}
	return ids
}

func roomFor(t *testing.T, st *store.Store, userID, room string) proto.Room {
	t.Helper()
	r, err := st.RoomFor(userID, room)
	if err != nil {
		t.Fatalf("room %s for %s: %v", room, userID, err)
	}
	return r
}

func appendOK(t *testing.T, st *store.Store, req store.AppendRequest) store.AppendResult {
	t.Helper()
	res, err := st.AppendBatch([]store.AppendRequest{req})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil {
		t.Fatalf("append %+v: %v", req, res[0].Err)
	}
	return res[0]
}

// TestMigrationFromSchema1 opens a database written by the release before §7 (testdata/v1.db:
// users alice 1 (admin), bob 2, carol 3, dave 4; general: alice, bob, carol, alice; dev: bob,
// carol, bob; empty: nothing).
func TestMigrationFromSchema1(t *testing.T) {
	data, err := os.ReadFile("testdata/v1.db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kaiwa.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		t.Fatal(err)
	}

	rooms, err := st.Rooms()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"dev": 3, "empty": 0, "general": 4}
	if len(rooms) != len(want) {
		t.Fatalf("rooms = %+v", rooms)
	}
	for _, r := range rooms {
		if r.Kind != proto.RoomPublic || r.LastSeq != want[r.Name] {
			t.Errorf("room %s: kind %q last_seq %d, want public %d", r.Name, r.Kind, r.LastSeq, want[r.Name])
		}
		if r.LastSeq == 0 && !r.LastTS.Equal(r.CreatedAt) || r.LastSeq > 0 && !r.LastTS.After(r.CreatedAt) {
			t.Errorf("room %s: last_ts %v, created %v", r.Name, r.LastTS, r.CreatedAt)
		}
	}
	msgs, more, err := st.Page("dev", nil, nil, 10)
	if err != nil || more {
		t.Fatal(err, more)
	}
	var got []string
	for i, m := range msgs {
		if m.Seq != uint64(i+1) || m.Room != "dev" || m.Kind != "" {
			t.Errorf("message %d: %+v", i, m)
		}
		got = append(got, m.From+": "+m.Text)
	}
	if !slices.Equal(got, []string{"bob: build is green", "carol: @bob thanks", "bob: shipping"}) {
		t.Errorf("dev history = %q", got)
	}

	members := map[string]string{"general": "alice bob carol dave", "dev": "bob carol", "empty": ""}
	for room, names := range members {
		ms, err := st.Members(room)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.Name)
		}
		if s := joined(got); s != names {
			t.Errorf("members of %s = %q, want %q", room, s, names)
		}
	}
	for _, tc := range []struct{ user, room string }{{"1", "general"}, {"4", "general"}, {"2", "dev"}, {"3", "dev"}} {
		r := roomFor(t, st, tc.user, tc.room)
		if !r.Member || r.ReadSeq != want[tc.room] || r.Unread != 0 || r.Mentions != 0 {
			t.Errorf("%s in %s after migration: %+v", tc.user, tc.room, r)
		}
	}
	if r := roomFor(t, st, "1", "dev"); r.Member || r.ReadSeq != 0 {
		t.Errorf("alice never wrote in dev: %+v", r)
	}

	// Life goes on: seqs continue, counts and dms work on the migrated file.
	res := appendOK(t, st, store.AppendRequest{Room: "dev", UserID: "3", From: "carol", ClientID: "n1", Text: "@bob @dave look"})
	if res.Msg.Seq != 4 || !slices.Equal(res.Msg.Mentions, []string{"bob", "dave"}) {
		t.Errorf("new message = %+v", res.Msg)
	}
	if r := roomFor(t, st, "2", "dev"); r.Unread != 1 || r.Mentions != 1 {
		t.Errorf("bob in dev: %+v", r)
	}
	dm, created, err := st.DM("1", "2")
	if err != nil || !created || dm.Kind != proto.RoomDM {
		t.Fatalf("dm: %+v %v %v", dm, created, err)
	}
	st.Close()
	// Opening again migrates nothing twice.
	again := openAt(t, path)
	if r := roomFor(t, again, "2", "dev"); r.Unread != 1 || r.ReadSeq != 3 {
		t.Errorf("bob in dev after reopening: %+v", r)
	}
}

func joined(names []string) string {
	s := ""
	for i, n := range names {
		if i > 0 {
			s += " "
		}
		s += n
	}
	return s
}

func TestNewUserIsMemberOfGeneral(t *testing.T) {
	st := openStore(t)
	ids := users(t, st, "alice")
	appendOK(t, st, store.AppendRequest{Room: store.DefaultRoom, UserID: ids["alice"], From: "alice", ClientID: "1", Text: "hi"})
	bob := users(t, st, "bob")["bob"]
	r := roomFor(t, st, bob, store.DefaultRoom)
	if !r.Member || r.ReadSeq != 1 || r.Unread != 0 || r.Members != nil {
		t.Errorf("bob in general: %+v", r)
	}
	if rooms, err := st.Memberships(bob); err != nil || !slices.Equal(rooms, []string{"general"}) {
		t.Errorf("memberships = %v, %v", rooms, err)
	}
}

// TestPrivateRoomIsMissingToNonMembers checks every store path a user reaches a room by.
func TestPrivateRoomIsMissingToNonMembers(t *testing.T) {
	st := openStore(t)
	ids := users(t, st, "alice", "bob", "carol")
	if _, err := st.NewRoom(ids["alice"], "secret", proto.RoomPrivate); err != nil {
		t.Fatal(err)
	}
	dm, _, err := st.DM(ids["alice"], ids["bob"])
	if err != nil {
		t.Fatal(err)
	}
	carol := ids["carol"]
	for _, room := range []string{"secret", dm.Name, "never-created"} {
		t.Run(room, func(t *testing.T) {
			checks := map[string]error{}
			_, checks["CanRead"] = st.CanRead(carol, room)
			_, checks["RoomFor"] = st.RoomFor(carol, room)
			_, _, checks["History"] = st.History(carol, room, nil, nil, 10)
			_, checks["SetRead"] = st.SetRead(carol, room, 1)
			_, checks["AddMember"] = st.AddMember(carol, room, carol)
			_, checks["RemoveMember"] = st.RemoveMember(carol, room, carol)
			res, err := st.AppendBatch([]store.AppendRequest{{Room: room, UserID: carol, From: "carol", ClientID: "x", Text: "hi"}})
			if err != nil {
				t.Fatal(err)
			}
			checks["AppendBatch"] = res[0].Err
			for name, err := range checks {
				if !errors.Is(err, store.ErrNotFound) {
					t.Errorf("%s: %v, want ErrNotFound", name, err)
				}
			}
		})
	}
	rooms, err := st.RoomsFor(carol)
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 1 || rooms[0].Name != "general" {
		t.Errorf("carol's rooms = %+v", rooms)
	}
}

func TestMembershipRules(t *testing.T) {
	st := openStore(t)
	ids := users(t, st, "admin", "alice", "bob", "carol")
	if _, err := st.NewRoom(ids["alice"], "priv", proto.RoomPrivate); err != nil {
		t.Fatal(err)
	}
	if _, err := st.NewRoom(ids["alice"], "pub", proto.RoomPublic); err != nil {
		t.Fatal(err)
	}
	dm, _, err := st.DM(ids["alice"], ids["bob"])
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name           string
		add            bool
		by, room, user string
		want           error
		wantChanged    bool
	}{
		{"join public oneself", true, "bob", "pub", "bob", nil, true},
		{"join public again", true, "bob", "pub", "bob", nil, false},
		{"add another to public", true, "bob", "pub", "carol", store.ErrForbidden, false},
		{"non-member adds to private", true, "bob", "priv", "bob", store.ErrNotFound, false},
		{"member adds to private", true, "alice", "priv", "bob", nil, true},
		{"new member adds another", true, "bob", "priv", "carol", nil, true},
		{"add to dm", true, "alice", dm.Name, "carol", store.ErrForbidden, false},
		{"member removes another, not creator", false, "bob", "priv", "carol", store.ErrForbidden, false},
		{"creator removes", false, "alice", "priv", "carol", nil, true},
		{"leave private", false, "bob", "priv", "bob", nil, true},
		{"leave general", false, "bob", "general", "bob", store.ErrForbidden, false},
		{"leave dm", false, "bob", dm.Name, "bob", store.ErrForbidden, false},
		{"admin removes from public", false, "admin", "pub", "bob", nil, true},
	}
	for _, s := range steps {
		var changed bool
		var err error
		if s.add {
			changed, err = st.AddMember(ids[s.by], s.room, ids[s.user])
		} else {
			changed, err = st.RemoveMember(ids[s.by], s.room, ids[s.user])
		}
		if !errors.Is(err, s.want) || (s.want == nil && err != nil) || changed != s.wantChanged {
			t.Errorf("%s: changed %v err %v, want %v %v", s.name, changed, err, s.wantChanged, s.want)
		}
	}
	if r := roomFor(t, st, ids["alice"], "priv"); !slices.Equal(r.Members, []string{"alice"}) {
		t.Errorf("priv members = %v", r.Members)
	}
	if r := roomFor(t, st, ids["bob"], dm.Name); !slices.Equal(r.Members, []string{"alice", "bob"}) || r.Kind != proto.RoomDM {
		t.Errorf("dm = %+v", r)
	}
}

func TestDMIsOnePerPair(t *testing.T) {
	st := openStore(t)
	ids := users(t, st, "alice", "bob", "carol")
	first, created, err := st.DM(ids["alice"], ids["bob"])
	if err != nil || !created {
		t.Fatal(err, created)
	}
	if len(first.Name) != 19 || !proto.ValidRoomName(first.Name) || first.Name[:3] != "dm-" {
		t.Errorf("dm name %q", first.Name)
	}
	second, created, err := st.DM(ids["bob"], ids["alice"])
	if err != nil || created || second.Name != first.Name {
		t.Errorf("the other asks: %+v created %v err %v", second, created, err)
	}
	other, _, err := st.DM(ids["alice"], ids["carol"])
	if err != nil || other.Name == first.Name {
		t.Errorf("another pair: %+v %v", other, err)
	}
	if _, _, err := st.DM(ids["alice"], "999"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown user: %v", err)
	}
	if _, _, err := st.DM(ids["alice"], ids["alice"]); !errors.Is(err, store.ErrForbidden) {
		t.Errorf("oneself: %v", err)
	}
}

func TestEditsAndDeletions(t *testing.T) {
	st := openStore(t)
	ids := users(t, st, "admin", "alice", "bob")
	if _, err := st.NewRoom(ids["alice"], "priv", proto.RoomPrivate); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddMember(ids["alice"], "priv", ids["bob"]); err != nil {
		t.Fatal(err)
	}
	req := func(user, kind string, target uint64, text string) store.AppendRequest {
		return store.AppendRequest{Room: "priv", UserID: ids[user], From: user, ClientID: user + kind + strconv.FormatUint(target, 10) + text, Text: text, Kind: kind, Target: target}
	}
	appendOK(t, st, req("bob", "", 0, "one"))     // 1
	appendOK(t, st, req("bob", "", 0, "two"))     // 2
	appendOK(t, st, req("alice", "", 0, "three")) // 3
	for _, tc := range []struct {
		name string
		req  store.AppendRequest
		want error
	}{
		{"edit someone else's", req("alice", proto.KindEdit, 1, "x"), store.ErrNotAllowed},
		{"edit missing", req("bob", proto.KindEdit, 9, "x"), store.ErrInvalidTarget},
		{"edit own", req("bob", proto.KindEdit, 1, "one @alice"), nil}, // 4
		{"edit an edit", req("bob", proto.KindEdit, 4, "x"), store.ErrInvalidTarget},
		{"edit again", req("bob", proto.KindEdit, 1, "one!"), nil},                 // 5
		{"creator deletes in private", req("alice", proto.KindDelete, 2, ""), nil}, // 6
		{"delete deleted", req("bob", proto.KindDelete, 2, ""), store.ErrInvalidTarget},
		{"edit deleted", req("bob", proto.KindEdit, 2, "x"), store.ErrInvalidTarget},
		{"member deletes another's", req("bob", proto.KindDelete, 3, ""), store.ErrNotAllowed},
		{"unknown kind", req("bob", "shout", 3, ""), store.ErrInvalidTarget},
	} {
		res, err := st.AppendBatch([]store.AppendRequest{tc.req})
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(res[0].Err, tc.want) || tc.want == nil && res[0].Err != nil {
			t.Errorf("%s: %v, want %v", tc.name, res[0].Err, tc.want)
		}
	}
	// Admin deletes in a public room.
	if _, err := st.AddMember(ids["admin"], "general", ids["admin"]); err != nil {
		t.Fatal(err)
	}
	g := appendOK(t, st, store.AppendRequest{Room: "general", UserID: ids["bob"], From: "bob", ClientID: "g", Text: "g"})
	appendOK(t, st, store.AppendRequest{Room: "general", UserID: ids["admin"], From: "admin", ClientID: "d", Kind: proto.KindDelete, Target: g.Msg.Seq})

	msgs, _, err := st.History(ids["bob"], "priv", nil, nil, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 6 {
		t.Fatalf("history has %d entries: %+v", len(msgs), msgs)
	}
	if m := msgs[0]; m.Text != "one!" || m.EditedAt == nil || m.Deleted || m.Mentions != nil {
		t.Errorf("edited twice: %+v", m)
	}
	if m := msgs[1]; m.Text != "" || !m.Deleted || m.EditedAt != nil {
		t.Errorf("deleted: %+v", m)
	}
	if m := msgs[3]; m.Kind != proto.KindEdit || m.Target != 1 || m.Text != "one @alice" || !slices.Equal(m.Mentions, []string{"alice"}) {
		t.Errorf("the edit itself: %+v", m)
	}
	if m := msgs[5]; m.Kind != proto.KindDelete || m.Target != 2 || m.From != "alice" {
		t.Errorf("the deletion itself: %+v", m)
	}
	raw, _, err := st.Page("priv", nil, nil, 50)
	if err != nil {
		t.Fatal(err)
	}
	if raw[0].Text != "one" || raw[0].EditedAt != nil || raw[1].Text != "two" {
		t.Errorf("Page must give messages as sent: %+v", raw[:2])
	}
	// Edits and deletions are not unread: alice read up to 3 when she wrote it; after it came
	// bob's two edits and her deletion.
	if r := roomFor(t, st, ids["alice"], "priv"); r.ReadSeq != 6 || r.Unread != 0 {
		t.Errorf("alice: %+v", r)
	}
	if r := roomFor(t, st, ids["bob"], "priv"); r.ReadSeq != 5 || r.Unread != 0 {
		t.Errorf("bob: %+v", r)
	}
}

func TestReadMarker(t *testing.T) {
	st := openStore(t)
	ids := users(t, st, "alice", "bob")
	for i := range 5 {
		appendOK(t, st, store.AppendRequest{Room: "general", UserID: ids["alice"], From: "alice", ClientID: strconv.Itoa(i), Text: "@bob hi"})
	}
	bob := ids["bob"]
	for _, tc := range []struct {
		seq, want uint64
		unread    int
	}{
		{0, 0, 5}, {2, 2, 3}, {1, 2, 3}, {99, 5, 0},
	} {
		got, err := st.SetRead(bob, "general", tc.seq)
		if err != nil || got != tc.want {
			t.Errorf("SetRead(%d) = %d, %v; want %d", tc.seq, got, err, tc.want)
		}
		if r := roomFor(t, st, bob, "general"); r.ReadSeq != tc.want || r.Unread != tc.unread || r.Mentions != tc.unread {
			t.Errorf("after SetRead(%d): %+v", tc.seq, r)
		}
	}
	if _, err := st.NewRoom(ids["alice"], "pub", proto.RoomPublic); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetRead(bob, "pub", 1); !errors.Is(err, store.ErrNotMember) {
		t.Errorf("non-member of a public room: %v", err)
	}
	// Sending joins a public room and moves the sender's marker.
	res := appendOK(t, st, store.AppendRequest{Room: "pub", UserID: bob, From: "bob", ClientID: "p", Text: "me too"})
	if !res.Joined || res.Read != 1 {
		t.Errorf("first send to pub: %+v", res)
	}
	if res := appendOK(t, st, store.AppendRequest{Room: "pub", UserID: bob, From: "bob", ClientID: "q", Text: "again"}); res.Joined || res.Read != 2 {
		t.Errorf("second send to pub: %+v", res)
	}
}

// TestUnreadIsExact compares the counts with a count over the whole history, after a random
// mix of messages, edits, deletions, mentions and marker moves from several users.
func TestUnreadIsExact(t *testing.T) {
	st := openStore(t)
	names := []string{"ann", "ben", "cat", "dan"}
	ids := users(t, st, names...)
	if _, err := st.NewRoom(ids["ann"], "r", proto.RoomPrivate); err != nil {
		t.Fatal(err)
	}
	for _, n := range names[1:] {
		if _, err := st.AddMember(ids["ann"], "r", ids[n]); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	plainOf := map[string][]uint64{} // author → own plain seqs
	var reqs []store.AppendRequest
	for i := range 600 {
		from := names[rng.IntN(len(names))]
		req := store.AppendRequest{Room: "r", UserID: ids[from], From: from, ClientID: strconv.Itoa(i), Text: "x"}
		if rng.IntN(3) == 0 {
			req.Text = "hey @" + names[rng.IntN(len(names))]
		}
		if own := plainOf[from]; len(own) > 0 && rng.IntN(5) == 0 {
			req.Target = own[rng.IntN(len(own))]
			req.Kind, req.Text = proto.KindEdit, "edited"
			if rng.IntN(2) == 0 {
				req.Kind, req.Text = proto.KindDelete, ""
			}
		}
		reqs = append(reqs, req)
		if len(reqs) == 20 || i == 599 {
			res, err := st.AppendBatch(reqs)
			if err != nil {
				t.Fatal(err)
			}
			for j, r := range res {
				if r.Err == nil && reqs[j].Kind == "" {
					plainOf[reqs[j].From] = append(plainOf[reqs[j].From], r.Msg.Seq)
				}
			}
			reqs = reqs[:0]
			who := names[rng.IntN(len(names))]
			if _, err := st.SetRead(ids[who], "r", uint64(rng.IntN(i+2))); err != nil {
				t.Fatal(err)
			}
		}
	}
	all, _, err := st.Page("r", nil, new(uint64), 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		r := roomFor(t, st, ids[n], "r")
		unread, mentions := 0, 0
		for _, m := range all {
			if m.Seq > r.ReadSeq && m.Kind == "" && m.From != n {
				unread++
				if slices.Contains(m.Mentions, n) {
					mentions++
				}
			}
		}
		if r.Unread != unread || r.Mentions != mentions {
			t.Errorf("%s at %d: unread %d mentions %d, counted %d %d", n, r.ReadSeq, r.Unread, r.Mentions, unread, mentions)
		}
	}
}

func TestUnreadStopsAtMax(t *testing.T) {
	st := openStore(t)
	ids := users(t, st, "alice", "bob")
	var reqs []store.AppendRequest
	for i := range proto.UnreadMax + 5 {
		reqs = append(reqs, store.AppendRequest{Room: "general", UserID: ids["alice"], From: "alice", ClientID: strconv.Itoa(i), Text: "@bob"})
	}
	if _, err := st.AppendBatch(reqs); err != nil {
		t.Fatal(err)
	}
	if r := roomFor(t, st, ids["bob"], "general"); r.Unread != proto.UnreadMax || r.Mentions != proto.UnreadMax {
		t.Errorf("bob: %+v", r)
	}
}

func TestRoomsForOrder(t *testing.T) {
	st := openStore(t)
	ids := users(t, st, "alice", "bob")
	for _, name := range []string{"b", "a", "c"} {
		if _, err := st.NewRoom(ids["alice"], name, proto.RoomPublic); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.NewRoom(ids["alice"], "hidden", proto.RoomPrivate); err != nil {
		t.Fatal(err)
	}
	// Creation times may share a millisecond: make c the newest by a message.
	appendOK(t, st, store.AppendRequest{Room: "c", UserID: ids["alice"], From: "alice", ClientID: "1", Text: "x"})
	rooms, err := st.RoomsFor(ids["bob"])
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, r := range rooms {
		got = append(got, r.Name)
		if i > 0 && r.LastTS.After(rooms[i-1].LastTS) {
			t.Errorf("%s newer than %s before it", r.Name, rooms[i-1].Name)
		}
	}
	if got[0] != "c" || slices.Contains(got, "hidden") || len(got) != 4 {
		t.Errorf("bob's rooms = %v", got)
	}
}

func TestUsersByPrefix(t *testing.T) {
	st := openStore(t)
	users(t, st, "bob", "alice", "albert", "al")
	got, err := st.UsersByPrefix("al", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "al" || got[1].Name != "albert" {
		t.Errorf("users = %+v", got)
	}
}

func TestDeleteRoomForgetsMemberships(t *testing.T) {
	st := openStore(t)
	ids := users(t, st, "alice", "bob")
	if _, err := st.NewRoom(ids["alice"], "gone", proto.RoomPrivate); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddMember(ids["alice"], "gone", ids["bob"]); err != nil {
		t.Fatal(err)
	}
	appendOK(t, st, store.AppendRequest{Room: "gone", UserID: ids["alice"], From: "alice", ClientID: "1", Text: "@bob"})
	if err := st.DeleteRoom("gone"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"alice", "bob"} {
		if rooms, err := st.Memberships(ids[n]); err != nil || !slices.Equal(rooms, []string{"general"}) {
			t.Errorf("%s's memberships = %v, %v", n, rooms, err)
		}
	}
	// A new room of the same name starts with nobody and no mentions.
	if _, err := st.NewRoom(ids["bob"], "gone", proto.RoomPrivate); err != nil {
		t.Fatal(err)
	}
	if r := roomFor(t, st, ids["bob"], "gone"); !slices.Equal(r.Members, []string{"bob"}) || r.Mentions != 0 {
		t.Errorf("new room: %+v", r)
	}
	if _, err := st.RoomFor(ids["alice"], "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("alice sees the new room: %v", err)
	}
}
