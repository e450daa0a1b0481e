package store_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"kaiwa/server/store"
	"kaiwa/server/store/storetest"
	"kaiwa/shared/proto"
)

// observed opens a store whose Observer records, and returns both.
func observed(t *testing.T) (*store.Store, *storetest.Recorder) {
	t.Helper()
	st := openStore(t)
	rec := &storetest.Recorder{}
	st.SetObserver(rec)
	return st, rec
}

// wantCalls fails unless the recorder heard exactly want since the last take.
func wantCalls(t *testing.T, rec *storetest.Recorder, want ...string) {
	t.Helper()
	if got := rec.Take(); !slices.Equal(got, want) {
		t.Errorf("observer heard %q, want %q", got, want)
	}
}

func TestObserverAppended(t *testing.T) {
	st := openStore(t)
	ids := users(t, st, "alice", "bob")
	if _, err := st.CreateRoom("pub"); err != nil {
		t.Fatal(err)
	}
	rec := &storetest.Recorder{}
	st.SetObserver(rec)
	res, err := st.AppendBatch([]store.AppendRequest{
		{Room: "general", UserID: ids["alice"], From: "alice", ClientID: "a1", Text: "hi"},
		{Room: "general", UserID: ids["alice"], From: "alice", ClientID: "a1", Text: "hi"},
		{Room: "nowhere", UserID: ids["alice"], From: "alice", ClientID: "a2", Text: "hi"},
		{Room: "pub", UserID: ids["bob"], From: "bob", ClientID: "b1", Text: "first"},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, rec, "appended general:1 general:1+dup err pub:1+joined")
	for i, want := range []string{ids["alice"], ids["alice"], ids["alice"], ids["bob"]} {
		if res[i].UserID != want {
			t.Errorf("result %d: UserID %q, want %q", i, res[i].UserID, want)
		}
	}
}

func TestObserverReadMoved(t *testing.T) {
	st, rec := observed(t)
	ids := users(t, st, "alice", "bob")
	if _, err := st.CreateRoom("pub"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"b1", "b2"} {
		appendOK(t, st, store.AppendRequest{Room: "general", UserID: ids["bob"], From: "bob", ClientID: id, Text: "x"})
	}
	rec.Take()
	a := ids["alice"]
	steps := []struct {
		name string
		room string
		seq  uint64
		want []string
	}{
		{"forward", "general", 1, []string{"read " + a + " general 1"}},
		{"past the last seq is clamped", "general", 9, []string{"read " + a + " general 2"}},
		{"back is the marker as it is", "general", 1, []string{"read " + a + " general 2"}},
		{"not a member: nothing stored, nothing told", "pub", 1, nil},
		{"missing room", "nowhere", 1, nil},
	}
	for _, step := range steps {
		st.SetRead(a, step.room, step.seq)
		if got := rec.Take(); !slices.Equal(got, step.want) {
			t.Errorf("%s: observer heard %q, want %q", step.name, got, step.want)
		}
	}
}

func TestObserverMembershipChanged(t *testing.T) {
	st, rec := observed(t)
	ids := users(t, st, "alice", "bob", "carol")
	a, b, c := ids["alice"], ids["bob"], ids["carol"]
	sorted := func(ids ...string) string { return strings.Join(slices.Sorted(slices.Values(ids)), " ") }
	var dm string
	steps := []struct {
		name   string
		change func() error
		want   func() []string
	}{
		{"private room made", func() error { _, err := st.NewRoom(a, "team", proto.RoomPrivate); return err },
			func() []string { return []string{"members team: " + a} }},
		{"public room made", func() error { _, err := st.NewRoom(b, "pub", proto.RoomPublic); return err },
			func() []string { return []string{"members pub: " + b} }},
		{"room made by nobody", func() error { _, err := st.CreateRoom("lobby"); return err },
			func() []string { return nil }},
		{"member added to private: every member", func() error { _, err := st.AddMember(a, "team", b); return err },
			func() []string { return []string{"members team: " + sorted(a, b)} }},
		{"added again: no change", func() error { _, err := st.AddMember(a, "team", b); return err },
			func() []string { return nil }},
		{"refused", func() error {
			if _, err := st.AddMember(c, "team", c); !errors.Is(err, store.ErrNotFound) {
				return errors.New("a non-member joined a private room")
			}
			return nil
		}, func() []string { return nil }},
		{"member removed: them and the members left", func() error { _, err := st.RemoveMember(a, "team", b); return err },
			func() []string { return []string{"members team: " + sorted(a, b)} }},
		{"public room joined: only the joiner", func() error { _, err := st.AddMember(c, "pub", c); return err },
			func() []string { return []string{"members pub: " + c} }},
		{"public room left", func() error { _, err := st.RemoveMember(c, "pub", c); return err },
			func() []string { return []string{"members pub: " + c} }},
		{"dm created", func() error {
			r, _, err := st.DM(a, c)
			dm = r.Name
			return err
		}, func() []string { return []string{"members " + dm + ": " + sorted(a, c)} }},
		{"dm found", func() error { _, _, err := st.DM(c, a); return err },
			func() []string { return nil }},
	}
	for _, step := range steps {
		if err := step.change(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got, want := rec.Take(), step.want(); !slices.Equal(got, want) {
			t.Errorf("%s: observer heard %q, want %q", step.name, got, want)
		}
	}
}

// committedObserver checks, when told of a membership change, that the change is committed
// and that the store can be written: the call comes after the commit, outside bbolt's lock.
type committedObserver struct {
	storetest.Recorder
	st      *store.Store
	t       *testing.T
	checked int
}

func (o *committedObserver) MembershipChanged(room string, userIDs []string) {
	for _, id := range userIDs {
		if r, err := o.st.RoomFor(id, room); err != nil || !r.Member {
			o.t.Errorf("told of %s in %s before it was committed: %+v, %v", id, room, r, err)
		}
	}
	if err := o.st.PutCert("probe", []byte("x")); err != nil {
		o.t.Errorf("a write from the observer: %v", err)
	}
	o.checked++
}

func TestObserverIsToldAfterTheCommit(t *testing.T) {
	st := openStore(t)
	ids := users(t, st, "alice")
	o := &committedObserver{st: st, t: t}
	st.SetObserver(o)
	done := make(chan error, 1)
	go func() {
		_, err := st.NewRoom(ids["alice"], "team", proto.RoomPrivate)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("NewRoom did not return: the observer was called under bbolt's lock")
	}
	if o.checked != 1 {
		t.Errorf("observer told %d times, want 1", o.checked)
	}
}

func TestObserverRoomDeleted(t *testing.T) {
	st, rec := observed(t)
	if _, err := st.CreateRoom("pub"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteRoom("pub"); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, rec, "deleted pub")
	if err := st.DeleteRoom("pub"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting again: %v, want ErrNotFound", err)
	}
	wantCalls(t, rec)
}

func TestObserverSessionsRevoked(t *testing.T) {
	st, rec := observed(t)
	ids := users(t, st, "alice", "bob")
	for _, s := range []struct{ id, user string }{{"s1", "alice"}, {"s2", "alice"}, {"s3", "bob"}, {"s4", "bob"}} {
		if err := st.CreateSession(store.Session{ID: s.id, UserID: ids[s.user]}); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name   string
		change func() error
		want   []string
	}{
		{"update that does not revoke", func() error {
			_, err := st.UpdateSession("s1", func(s *store.Session) error { s.Current = [][]byte{{1}}; return nil })
			return err
		}, nil},
		{"update that revokes, failing", func() error {
			_, err := st.UpdateSession("s1", func(s *store.Session) error { s.Revoked = true; return errors.New("reused") })
			if err == nil || err.Error() != "reused" {
				return errors.New("fn's error was not returned")
			}
			return nil
		}, []string{"revoked s1"}},
		{"update of a revoked session", func() error {
			_, err := st.UpdateSession("s1", func(s *store.Session) error { return nil })
			return err
		}, nil},
		{"missing session", func() error {
			if _, err := st.UpdateSession("nope", func(s *store.Session) error { s.Revoked = true; return nil }); !errors.Is(err, store.ErrNotFound) {
				return errors.New("updated a missing session")
			}
			return nil
		}, nil},
		{"user's sessions revoked: the live ones", func() error { _, err := st.RevokeUserSessions(ids["alice"]); return err }, []string{"revoked s2"}},
		{"again: none live", func() error { _, err := st.RevokeUserSessions(ids["alice"]); return err }, nil},
		{"user disabled", func() error { _, err := st.SetUserDisabled(ids["bob"], true); return err }, []string{"revoked s3 s4"}},
		{"user enabled", func() error { _, err := st.SetUserDisabled(ids["bob"], false); return err }, nil},
	}
	for _, step := range steps {
		if err := step.change(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := rec.Take(); !slices.Equal(got, step.want) {
			t.Errorf("%s: observer heard %q, want %q", step.name, got, step.want)
		}
	}
}

func TestAt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kaiwa.db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	rec := &storetest.Recorder{}
	st.SetObserver(rec)
	applied := func() uint64 {
		t.Helper()
		seq, err := st.AppliedSeq()
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	if got := applied(); got != 0 {
		t.Fatalf("a new database has applied seq %d, want 0", got)
	}
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 6_000_000, time.UTC)

	u, err := st.At(t0, 5).CreateUser("alice", "hash", false)
	if err != nil {
		t.Fatal(err)
	}
	if !u.CreatedAt.Equal(t0) || applied() != 5 {
		t.Errorf("user made at %v, applied %d; want %v and 5", u.CreatedAt, applied(), t0)
	}
	t1 := t0.Add(time.Hour)
	room, err := st.At(t1, 6).NewRoom(u.ID, "team", proto.RoomPrivate)
	if err != nil {
		t.Fatal(err)
	}
	if !room.CreatedAt.Equal(t1) || applied() != 6 {
		t.Errorf("room made at %v, applied %d; want %v and 6", room.CreatedAt, applied(), t1)
	}
	t2 := t1.Add(time.Minute)
	res, err := st.At(t2, 7).AppendBatch([]store.AppendRequest{{Room: "team", UserID: u.ID, From: "alice", ClientID: "c1", Text: "hi"}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	if !res[0].Msg.TS.Equal(t2) || applied() != 7 {
		t.Errorf("message at %v, applied %d; want %v and 7", res[0].Msg.TS, applied(), t2)
	}
	if _, err := st.At(t2, 8).NewRoom(u.ID, "team", proto.RoomPrivate); !errors.Is(err, store.ErrRoomExists) {
		t.Fatalf("making team again: %v, want ErrRoomExists", err)
	}
	if got := applied(); got != 7 {
		t.Errorf("a failed mutation moved the applied seq to %d, want 7", got)
	}
	if _, err := st.At(t2, 0).CreateUser("bob", "hash", false); err != nil {
		t.Fatal(err)
	}
	if got := applied(); got != 7 {
		t.Errorf("a view without seq moved the applied seq to %d, want 7", got)
	}
	// Session writes share commits (Batch) unless a view records a seq.
	if err := st.At(t2, 9).CreateSession(store.Session{ID: "s1", UserID: u.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.At(t2, 10).UpdateSession("s1", func(s *store.Session) error { s.Revoked = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := applied(); got != 10 {
		t.Errorf("applied seq after session writes %d, want 10", got)
	}
	wantCalls(t, rec, "members team: "+u.ID, "appended team:1", "revoked s1")

	st.Close()
	st = openAt(t, path)
	if got := applied(); got != 10 {
		t.Errorf("applied seq after reopening %d, want 10", got)
	}
}

func TestOpenEmptyAndInitialize(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{7}, 32)
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	// node opens an empty copy and initialises it as a cluster node would, from its log.
	node := func(name string) *store.Store {
		t.Helper()
		st, err := store.OpenEmpty(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if st.SigningKey() != nil {
			t.Errorf("%s: an empty database has a signing key", name)
		}
		if rooms, err := st.Rooms(); err != nil || len(rooms) != 0 {
			t.Errorf("%s: rooms of an empty database %+v, %v; want none", name, rooms, err)
		}
		if err := st.At(t0, 1).Initialize(key); err != nil {
			t.Fatal(err)
		}
		return st
	}
	a, b := node("a.db"), node("b.db")
	if !bytes.Equal(a.SigningKey(), key) {
		t.Errorf("signing key %x, want %x", a.SigningKey(), key)
	}
	rooms, err := a.Rooms()
	if err != nil || len(rooms) != 1 || rooms[0].Name != store.DefaultRoom || !rooms[0].CreatedAt.Equal(t0) || rooms[0].Kind != proto.RoomPublic {
		t.Errorf("rooms after Initialize %+v, %v; want %s made at %v", rooms, err, store.DefaultRoom, t0)
	}
	if err := a.At(t0, 2).Initialize(bytes.Repeat([]byte{8}, 32)); err != nil {
		t.Fatalf("Initialize again: %v", err)
	}
	if seq, _ := a.AppliedSeq(); !bytes.Equal(a.SigningKey(), key) || seq != 2 {
		t.Errorf("Initialize again: key %x, applied %d; want the first key and 2", a.SigningKey(), seq)
	}
	if err := a.Initialize(key[:31]); err == nil {
		t.Error("Initialize took a key of 31 bytes")
	}
	// Copies initialised with one key name dm rooms alike; another database does not.
	other := openStore(t)
	var names []string
	for _, st := range []*store.Store{a, b, other} {
		ids := users(t, st, "alice", "bob")
		r, _, err := st.DM(ids["alice"], ids["bob"])
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, r.Name)
	}
	if names[0] != names[1] || names[0] == names[2] {
		t.Errorf("dm names %q: want the first two equal, the third different", names)
	}

	// Open takes an initialised file as it is, and initialises an empty one.
	a.Close()
	reopened := openAt(t, filepath.Join(dir, "a.db"))
	if !bytes.Equal(reopened.SigningKey(), key) {
		t.Error("Open changed the signing key of an initialised file")
	}
	empty, err := store.OpenEmpty(filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	empty.Close()
	opened := openAt(t, filepath.Join(dir, "c.db"))
	if len(opened.SigningKey()) != 32 {
		t.Errorf("Open of an empty file: signing key of %d bytes, want 32", len(opened.SigningKey()))
	}
	if _, err := opened.Room(store.DefaultRoom); err != nil {
		t.Errorf("Open of an empty file: %v", err)
	}
}

func TestSetSigningKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kaiwa.db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{9}, 32)
	if err := st.SetSigningKey(key); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(st.SigningKey(), key) || !bytes.Equal(st.At(time.Now(), 0).SigningKey(), key) {
		t.Error("the store or its view does not sign with the key set")
	}
	if err := st.SetSigningKey(key[:8]); err == nil {
		t.Error("SetSigningKey took a key of 8 bytes")
	}
	rotated, err := st.RotateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(rotated, key) || !bytes.Equal(st.SigningKey(), rotated) {
		t.Error("RotateSigningKey did not replace the key")
	}
	st.Close()
	if got := openAt(t, path).SigningKey(); !bytes.Equal(got, rotated) {
		t.Error("the rotated key was not stored")
	}
}

func TestSwapSession(t *testing.T) {
	st, rec := observed(t)
	ids := users(t, st, "alice")
	created := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := st.CreateSession(store.Session{ID: "s1", UserID: ids["alice"], CreatedAt: created, ExpiresAt: created.Add(time.Hour), Current: [][]byte{{1, 2}}}); err != nil {
		t.Fatal(err)
	}
	old, err := st.Session("s1")
	if err != nil {
		t.Fatal(err)
	}
	next := old
	next.Current, next.ExpiresAt = [][]byte{{3, 4}}, created.Add(2*time.Hour)
	if ok, err := st.SwapSession("s1", old, next); !ok || err != nil {
		t.Fatalf("swap from the stored session: %v, %v; want true", ok, err)
	}
	if got, _ := st.Session("s1"); !got.ExpiresAt.Equal(next.ExpiresAt) || !bytes.Equal(got.Current[0], []byte{3, 4}) {
		t.Errorf("stored after the swap: %+v", got)
	}
	revoked := old
	revoked.Revoked = true
	if ok, err := st.SwapSession("s1", old, revoked); ok || err != nil {
		t.Fatalf("swap from a stale session: %v, %v; want false", ok, err)
	}
	wantCalls(t, rec)
	revoked = next
	revoked.Revoked, revoked.Current = true, nil
	if ok, err := st.SwapSession("s1", next, revoked); !ok || err != nil {
		t.Fatalf("swap that revokes: %v, %v; want true", ok, err)
	}
	wantCalls(t, rec, "revoked s1")
	if _, err := st.SwapSession("nope", old, next); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("swap of a missing session: %v, want ErrNotFound", err)
	}
}

func TestSwapUser(t *testing.T) {
	st := openStore(t)
	ids := users(t, st, "alice")
	old, err := st.UserByID(ids["alice"])
	if err != nil {
		t.Fatal(err)
	}
	admin := old
	admin.Admin = true
	if ok, err := st.SwapUser(old.ID, old, admin); !ok || err != nil {
		t.Fatalf("swap from the stored user: %v, %v; want true", ok, err)
	}
	if got, _ := st.UserByID(old.ID); !got.Admin {
		t.Error("the swap did not store the new user")
	}
	disabled := old
	disabled.Disabled = true
	if ok, err := st.SwapUser(old.ID, old, disabled); ok || err != nil {
		t.Fatalf("swap from a stale user: %v, %v; want false", ok, err)
	}
	renamed := admin
	renamed.Name = "mallory"
	if _, err := st.SwapUser(old.ID, admin, renamed); err == nil {
		t.Error("a swap renamed the user")
	}
	ghost := store.User{ID: "99", Name: "ghost"}
	if _, err := st.SwapUser("99", ghost, ghost); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("swap of a missing user: %v, want ErrNotFound", err)
	}
}
