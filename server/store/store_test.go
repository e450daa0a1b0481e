package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"kaiwa/server/store"
	"kaiwa/server/store/storetest"
	"kaiwa/shared/proto"
)

// openStore opens a new database in t.TempDir and checks the file's consistency when the test
// ends.
func openStore(t *testing.T) *store.Store {
	t.Helper()
	return storetest.Open(t)
}

func openAt(t *testing.T, path string) *store.Store {
	t.Helper()
	return storetest.OpenAt(t, path)
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	path := filepath.Join(dir, "kaiwa.db")
	openAt(t, path)
	for _, tc := range []struct {
		name string
		path string
		want os.FileMode
	}{
		{"directory", dir, 0o700},
		{"file", path, 0o600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fi, err := os.Stat(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tc.want {
				t.Errorf("mode of %s = %v, want %v", tc.path, got, tc.want)
			}
		})
	}
}

func TestNewDatabaseIsInitialised(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kaiwa.db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.Clone(st.SigningKey())
	if len(key) != 32 {
		t.Errorf("signing key has %d bytes, want 32", len(key))
	}
	if bytes.Equal(key, make([]byte, 32)) {
		t.Error("signing key is all zero")
	}
	rooms, err := st.Rooms()
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 1 || rooms[0].Name != store.DefaultRoom || rooms[0].LastSeq != 0 || rooms[0].CreatedAt.IsZero() {
		t.Errorf("rooms of a new database = %+v, want only an empty %q", rooms, store.DefaultRoom)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	reopened := openAt(t, path)
	if !bytes.Equal(reopened.SigningKey(), key) {
		t.Error("reopening changed the signing key: every access token would be void after a restart")
	}
	rooms, err = reopened.Rooms()
	if err != nil || len(rooms) != 1 {
		t.Errorf("rooms after reopening = %+v, %v; want only %q", rooms, err, store.DefaultRoom)
	}

	other := openStore(t)
	if bytes.Equal(other.SigningKey(), key) {
		t.Error("two databases share a signing key")
	}
}

func TestOpenLockedFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kaiwa.db")
	openAt(t, path)
	// bbolt's flock belongs to the open file description, so a second Open in this same
	// process competes for the lock just as another process would.
	done := make(chan error, 1)
	go func() {
		st, err := store.Open(path)
		if err == nil {
			st.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrLocked) {
			t.Fatalf("second Open: %v, want an error wrapping ErrLocked", err)
		}
	case <-time.After(10 * time.Second): // the store gives up after 1 s; a slow machine may add some
		t.Fatal("second Open of a locked file still waits after 10 s")
	}
}

func TestAppendIsIdempotentPerUser(t *testing.T) {
	st := openStore(t)
	first, dup, err := st.Append(store.DefaultRoom, "1", "alice", "c1", "hello")
	if err != nil || dup || first.Seq != 1 {
		t.Fatalf("first Append = %+v, dup %t, %v; want seq 1, not dup", first, dup, err)
	}
	tests := []struct {
		name             string
		userID, from, id string
		text             string
		wantSeq          uint64
		wantDup          bool
		wantText         string
	}{
		{"same user and id again", "1", "alice", "c1", "hello again", 1, true, "hello"},
		{"same user, new id", "1", "alice", "c2", "second", 2, false, "second"},
		{"other user, same id", "2", "bob", "c1", "from bob", 3, false, "from bob"},
		{"other user, same id again", "2", "bob", "c1", "retry", 3, true, "from bob"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, dup, err := st.Append(store.DefaultRoom, tc.userID, tc.from, tc.id, tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if msg.Seq != tc.wantSeq || dup != tc.wantDup || msg.Text != tc.wantText || msg.ID != tc.id {
				t.Errorf("Append = %+v, dup %t; want seq %d, dup %t, text %q", msg, dup, tc.wantSeq, tc.wantDup, tc.wantText)
			}
		})
	}
	room, err := st.Room(store.DefaultRoom)
	if err != nil {
		t.Fatal(err)
	}
	if room.LastSeq != 3 {
		t.Errorf("last seq = %d, want 3: a retried id stored a second message", room.LastSeq)
	}
	msgs, _, err := st.Page(store.DefaultRoom, nil, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Errorf("room holds %d messages, want 3", len(msgs))
	}

	if _, _, err := st.Append("nowhere", "1", "alice", "c1", "hi"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Append to a missing room: %v, want ErrNotFound", err)
	}
}

func TestPage(t *testing.T) {
	st := openStore(t)
	const total = 120
	for i := 1; i <= total; i++ {
		if _, _, err := st.Append(store.DefaultRoom, "1", "alice", "c"+strconv.Itoa(i), "m"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	u := func(v uint64) *uint64 { return &v }
	tests := []struct {
		name          string
		before, after *uint64
		limit         int
		first, last   uint64 // 0, 0: empty page
		more          bool
	}{
		{"newest", nil, nil, 50, 71, 120, true},
		{"everything", nil, nil, 200, 1, 120, false},
		{"before", u(101), nil, 10, 91, 100, true},
		{"before reaching the start", u(51), nil, 50, 1, 50, false},
		{"before just short of the start", u(52), nil, 50, 2, 51, true},
		{"before past the end", u(1000), nil, 50, 71, 120, true},
		{"before the first", u(1), nil, 50, 0, 0, false},
		{"before zero", u(0), nil, 50, 0, 0, false},
		{"after zero", nil, u(0), 50, 1, 50, true},
		{"after", nil, u(110), 5, 111, 115, true},
		{"after reaching the end", nil, u(70), 50, 71, 120, false},
		{"after just short of the end", nil, u(69), 50, 70, 119, true},
		{"after the last", nil, u(total), 50, 0, 0, false},
		{"after the largest seq", nil, u(1<<64 - 1), 50, 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs, more, err := st.Page(store.DefaultRoom, tc.before, tc.after, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if more != tc.more {
				t.Errorf("more = %t, want %t", more, tc.more)
			}
			checkRun(t, msgs, tc.first, tc.last)
		})
	}
	if _, _, err := st.Page("nowhere", nil, nil, 50); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Page of a missing room: %v, want ErrNotFound", err)
	}
}

// checkRun fails unless msgs are exactly the seqs first..last ascending (none when both are 0),
// each with the text it was appended with.
func checkRun(t *testing.T, msgs []proto.Message, first, last uint64) {
	t.Helper()
	var want []uint64
	for s := first; first != 0 && s <= last; s++ {
		want = append(want, s)
	}
	var got []uint64
	for _, m := range msgs {
		got = append(got, m.Seq)
		if m.Text != "m"+strconv.FormatUint(m.Seq, 10) {
			t.Errorf("message %d has text %q", m.Seq, m.Text)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("seqs = %v, want %v", got, want)
	}
}

func TestRooms(t *testing.T) {
	st := openStore(t)
	created, err := st.CreateRoom("dev")
	if err != nil {
		t.Fatal(err)
	}
	if created.Name != "dev" || created.CreatedAt.IsZero() {
		t.Errorf("CreateRoom = %+v", created)
	}
	if _, err := st.CreateRoom("dev"); !errors.Is(err, store.ErrRoomExists) {
		t.Errorf("CreateRoom of an existing room: %v, want ErrRoomExists", err)
	}
	if _, err := st.Room("missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Room(missing): %v, want ErrNotFound", err)
	}
	if _, _, err := st.Append("dev", "1", "alice", "x", "m1"); err != nil {
		t.Fatal(err)
	}
	rooms, err := st.Rooms()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, r := range rooms {
		got[r.Name] = r.LastSeq
	}
	if len(got) != 2 || got["dev"] != 1 || got[store.DefaultRoom] != 0 {
		t.Errorf("rooms = %+v, want dev (last seq 1) and general (0)", rooms)
	}
}

func TestUsers(t *testing.T) {
	st := openStore(t)
	alice, err := st.CreateUser("alice", "hash-a", false)
	if err != nil {
		t.Fatal(err)
	}
	root, err := st.CreateUser("root", "hash-r", true)
	if err != nil {
		t.Fatal(err)
	}
	if alice.ID == "" || alice.ID == root.ID {
		t.Errorf("user ids %q and %q: want distinct, non-empty", alice.ID, root.ID)
	}
	if _, err := st.CreateUser("alice", "other", false); !errors.Is(err, store.ErrUsernameTaken) {
		t.Errorf("second alice: %v, want ErrUsernameTaken", err)
	}
	tests := []struct {
		name   string
		lookup func() (store.User, error)
		want   store.User
	}{
		{"by name", func() (store.User, error) { return st.UserByName("root") }, root},
		{"by id", func() (store.User, error) { return st.UserByID(alice.ID) }, alice},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := tc.lookup()
			if err != nil {
				t.Fatal(err)
			}
			if u.ID != tc.want.ID || u.Name != tc.want.Name || u.Admin != tc.want.Admin || u.PasswordHash != tc.want.PasswordHash {
				t.Errorf("got %+v, want %+v", u, tc.want)
			}
		})
	}
	if _, err := st.UserByName("nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByName(nobody): %v, want ErrNotFound", err)
	}
	if _, err := st.UserByID("999"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByID(999): %v, want ErrNotFound", err)
	}
	updated, err := st.UpdateUser(alice.ID, func(u *store.User) { u.PasswordHash = "new" })
	if err != nil || updated.PasswordHash != "new" {
		t.Fatalf("UpdateUser = %+v, %v", updated, err)
	}
	if u, _ := st.UserByName("alice"); u.PasswordHash != "new" {
		t.Errorf("password hash after UpdateUser = %q, want new", u.PasswordHash)
	}
}

func TestSessions(t *testing.T) {
	st := openStore(t)
	now := time.Now().UTC()
	for _, s := range []store.Session{
		{ID: "s1", UserID: "1", CreatedAt: now, ExpiresAt: now.Add(time.Hour), Current: [][]byte{[]byte("h1")}},
		{ID: "s2", UserID: "1", CreatedAt: now, ExpiresAt: now.Add(time.Hour), Current: [][]byte{[]byte("h2")}},
		{ID: "s3", UserID: "2", CreatedAt: now, ExpiresAt: now.Add(time.Hour), Current: [][]byte{[]byte("h3")}},
	} {
		if err := st.CreateSession(s); err != nil {
			t.Fatal(err)
		}
	}

	errFn := errors.New("fn failed")
	sess, err := st.UpdateSession("s1", func(s *store.Session) error {
		s.Revoked, s.Current = true, nil
		return errFn
	})
	if err != errFn {
		t.Errorf("UpdateSession returned %v, want fn's error as it is", err)
	}
	if !sess.Revoked {
		t.Error("UpdateSession did not return the session as fn left it")
	}
	if got, _ := st.Session("s1"); !got.Revoked {
		t.Error("a change made by a failing fn was not saved")
	}
	if _, err := st.UpdateSession("missing", func(*store.Session) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateSession(missing): %v, want ErrNotFound", err)
	}

	ids, err := st.RevokeUserSessions("1")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids) != "[s2]" {
		t.Errorf("RevokeUserSessions revoked %v, want [s2] (s1 already was)", ids)
	}
	tests := []struct {
		id      string
		revoked bool
	}{
		{"s1", true},
		{"s2", true},
		{"s3", false},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			s, err := st.Session(tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if s.Revoked != tc.revoked {
				t.Errorf("revoked = %t, want %t", s.Revoked, tc.revoked)
			}
			if s.Revoked && (len(s.Current) != 0 || len(s.Rotated) != 0) {
				t.Errorf("a revoked session still holds token hashes: %+v", s)
			}
		})
	}
}

func TestBackupOpens(t *testing.T) {
	st := openStore(t)
	if _, err := st.CreateUser("alice", "hash", true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Append(store.DefaultRoom, "1", "alice", "c1", "m1"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := st.Backup(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Size() != n {
		t.Errorf("Backup reported %d bytes, file has %d", n, fi.Size())
	}
	copied := openAt(t, path)
	if !bytes.Equal(copied.SigningKey(), st.SigningKey()) {
		t.Error("the backup has another signing key")
	}
	if u, err := copied.UserByName("alice"); err != nil || !u.Admin {
		t.Errorf("alice in the backup = %+v, %v", u, err)
	}
	if msgs, _, err := copied.Page(store.DefaultRoom, nil, nil, 10); err != nil || len(msgs) != 1 {
		t.Errorf("messages in the backup = %+v, %v; want one", msgs, err)
	}
}
