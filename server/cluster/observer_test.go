package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"kaiwa/server/cluster"
	"kaiwa/server/store"
)

var _ store.Engine = (*cluster.Engine)(nil)

// recorder is a store.Observer that writes down what it hears, as lines.
type recorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func (r *recorder) Appended(results []store.AppendResult) {
	for _, res := range results {
		r.add("appended %s %d %s dup=%v err=%v", res.Msg.Room, res.Msg.Seq, res.Msg.Text, res.Dup, res.Err)
	}
}
func (r *recorder) ReadMoved(userID, room string, seq uint64) {
	r.add("read %s %s %d", userID, room, seq)
}
func (r *recorder) MembershipChanged(room string, userIDs []string) {
	r.add("members %s %v", room, slices.Sorted(slices.Values(userIDs)))
}
func (r *recorder) RoomDeleted(room string) { r.add("deleted %s", room) }
func (r *recorder) SessionsRevoked(ids []string) {
	r.add("revoked %v", ids)
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

// observedEverywhere checks that every node's Observer hears every change, whichever node
// asked for it, in one order: that is how sockets on every node learn of messages, read
// markers, rooms and revocations.
func observedEverywhere(t *testing.T, engines []*cluster.Engine) {
	recs := make([]*recorder, len(engines))
	for i, e := range engines {
		// What earlier tests did is applied first, so the recorders hear only what follows.
		if err := e.Barrier(context.Background()); err != nil {
			t.Fatal(err)
		}
		recs[i] = &recorder{}
		e.SetObserver(recs[i])
		t.Cleanup(func() { e.SetObserver(nil) })
	}
	a, b, c := engines[0], engines[1], engines[2]
	ann, err := a.CreateUser("olive", "hash", false)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := b.CreateUser("oscar", "hash", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.NewRoom(ann.ID, "club", "private"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddMember(ann.ID, "club", bob.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Append("club", bob.ID, bob.Name, "m1", "hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetRead(ann.ID, "club", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateSession(store.Session{ID: "s-oscar", UserID: bob.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RevokeUserSessions(bob.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteRoom("club"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf("members club [%s]", ann.ID),
		fmt.Sprintf("members club [%s %s]", ann.ID, bob.ID),
		"appended club 1 hello dup=false err=<nil>",
		fmt.Sprintf("read %s club 1", ann.ID),
		"revoked [s-oscar]",
		"deleted club",
	}
	for i, e := range engines {
		if err := e.Barrier(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := recs[i].seen(); !slices.Equal(got, want) {
			t.Errorf("node %d heard:\n%q\nwant:\n%q", i, got, want)
		}
	}
}

// selfReader is an Observer that reads the store when told of a message, as the hub does (a
// room frame for a member who left reads a room it can no longer see).
type selfReader struct {
	e    *cluster.Engine
	mu   sync.Mutex
	errs []error
}

func (r *selfReader) Appended([]store.AppendResult) {
	barrier := r.e.Barrier(context.Background())
	_, missed := r.e.UserByName("nobody-at-all")
	mutation := r.e.DeleteCert("none")
	r.mu.Lock()
	r.errs = append(r.errs, barrier, missed, mutation)
	r.mu.Unlock()
}
func (r *selfReader) ReadMoved(string, string, uint64)   {}
func (r *selfReader) MembershipChanged(string, []string) {}
func (r *selfReader) RoomDeleted(string)                 {}
func (r *selfReader) SessionsRevoked([]string)           {}

// observerReadsWithoutWaiting checks that an Observer's reads that miss do not wait for the
// applier they run on, and that its mutations fail at once instead of waiting for it.
func observerReadsWithoutWaiting(t *testing.T, e *cluster.Engine) {
	if err := e.Barrier(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := &selfReader{e: e}
	e.SetObserver(r)
	defer e.SetObserver(nil)
	u, err := e.CreateUser("selfreader", "hash", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Append(store.DefaultRoom, u.ID, u.Name, "self-1", "hi"); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) != 3 || !errors.Is(r.errs[0], cluster.ErrSelfWait) || !errors.Is(r.errs[1], store.ErrNotFound) ||
		!errors.Is(r.errs[2], cluster.ErrSelfWait) {
		t.Fatalf("in the observer: barrier, missed read and mutation gave %v; want ErrSelfWait, ErrNotFound, ErrSelfWait", r.errs)
	}
}
