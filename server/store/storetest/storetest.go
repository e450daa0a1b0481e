// Package storetest opens Kaiwa databases for tests: a real bbolt file in the test's temporary
// directory, checked for consistency (bbolt's Tx.Check) and closed when the test ends.
package storetest

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"kaiwa/server/store"
)

// Open opens a new database in tb.TempDir().
func Open(tb testing.TB) *store.Store {
	tb.Helper()
	return OpenAt(tb, filepath.Join(tb.TempDir(), "kaiwa.db"))
}

// OpenAt opens the database at path; the test fails if it cannot, or if the file is not
// consistent when the test ends.
func OpenAt(tb testing.TB, path string) *store.Store {
	tb.Helper()
	st, err := store.Open(path)
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	tb.Cleanup(func() {
		if err := st.Check(); err != nil {
			tb.Errorf("database after the test: %v", err)
		}
		st.Close()
	})
	return st
}

// Recorder is a store.Observer that writes down every call, as a line of text, and passes it on
// to Next when set. The lines:
//
//	appended ROOM:SEQ[+dup][+joined] ... ("err" for a refusal)
//	read USER ROOM SEQ
//	members ROOM: ID ... (sorted)
//	deleted ROOM
//	revoked ID ...
type Recorder struct {
	Next store.Observer

	mu    sync.Mutex
	calls []string
}

// Take returns the lines written down since the last Take, and forgets them.
func (r *Recorder) Take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	calls := r.calls
	r.calls = nil
	return calls
}

func (r *Recorder) note(line string) {
	r.mu.Lock()
	r.calls = append(r.calls, line)
	r.mu.Unlock()
}

func (r *Recorder) Appended(results []store.AppendResult) {
	line := "appended"
	for _, res := range results {
		if res.Err != nil {
			line += " err"
			continue
		}
		line += fmt.Sprintf(" %s:%d", res.Msg.Room, res.Msg.Seq)
		if res.Dup {
			line += "+dup"
		}
		if res.Joined {
			line += "+joined"
		}
	}
	r.note(line)
	if r.Next != nil {
		r.Next.Appended(results)
	}
}

func (r *Recorder) ReadMoved(userID, room string, seq uint64) {
	r.note(fmt.Sprintf("read %s %s %d", userID, room, seq))
	if r.Next != nil {
		r.Next.ReadMoved(userID, room, seq)
	}
}

func (r *Recorder) MembershipChanged(room string, userIDs []string) {
	ids := slices.Sorted(slices.Values(userIDs))
	r.note("members " + room + ": " + strings.Join(ids, " "))
	if r.Next != nil {
		r.Next.MembershipChanged(room, userIDs)
	}
}

func (r *Recorder) RoomDeleted(room string) {
	r.note("deleted " + room)
	if r.Next != nil {
		r.Next.RoomDeleted(room)
	}
}

func (r *Recorder) SessionsRevoked(ids []string) {
	r.note("revoked " + strings.Join(ids, " "))
	if r.Next != nil {
		r.Next.SessionsRevoked(ids)
	}
}

// Dump returns every entry of st's Dump that keep accepts (nil keeps all), empty values as
// nil so that entries compare with reflect.DeepEqual.
func Dump(tb testing.TB, st *store.Store, keep func(store.Raw) bool) []store.Raw {
	tb.Helper()
	var entries []store.Raw
	if err := st.Dump(func(r store.Raw) error {
		if keep != nil && !keep(r) {
			return nil
		}
		if len(r.Value) == 0 {
			r.Value = nil
		}
		entries = append(entries, r)
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return entries
}
