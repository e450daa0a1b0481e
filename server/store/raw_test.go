package store_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"kaiwa/server/store"
	"kaiwa/server/store/storetest"
	"kaiwa/shared/proto"
)

// stored returns the value of key in st's meta bucket, nil if none.
func stored(t *testing.T, st *store.Store, key string) []byte {
	t.Helper()
	var v []byte
	for _, r := range storetest.Dump(t, st, nil) {
		if !r.Bucket && len(r.Path) == 1 && string(r.Path[0]) == "meta" && string(r.Key) == key {
			v = r.Value
		}
	}
	return v
}

// TestRestoreCopiesDumpExactly restores the dump of one database over another, already
// initialised with its own key and rooms, and finds the same content (its reset kept only the
// signing key), the same signing key,
// the bucket sequences that number the next message and user, and the log position of the view.
func TestRestoreCopiesDumpExactly(t *testing.T) {
	src := openStore(t)
	ann, err := src.CreateUser("ann", "hash-a", true)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := src.CreateUser("bob", "hash-b", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.NewRoom(ann.ID, "secret", proto.RoomPrivate); err != nil {
		t.Fatal(err)
	}
	if _, err := src.AddMember(ann.ID, "secret", bob.ID); err != nil {
		t.Fatal(err)
	}
	dm, _, err := src.DM(ann.ID, bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		room := []string{store.DefaultRoom, "secret", dm.Name}[i%3]
		if _, _, err := src.Append(room, ann.ID, "ann", fmt.Sprintf("c%d", i), fmt.Sprintf("hello %d @bob", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := src.AppendBatch([]store.AppendRequest{{Room: "secret", UserID: ann.ID, From: "ann", ClientID: "e1", Text: "edited", Kind: proto.KindEdit, Target: 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := src.SetRead(bob.ID, "secret", 5); err != nil {
		t.Fatal(err)
	}
	if err := src.DeleteRoom(store.DefaultRoom); err != nil {
		t.Logf("general stays: %v", err) // the copy must not keep its own general either way
	}
	want := storetest.Dump(t, src, nil)
	if len(want) < 50 {
		t.Fatalf("dump of %d entries: too few", len(want))
	}
	if last := want[len(want)-1]; len(last.Path) != 1 || string(last.Path[0]) != "meta" {
		t.Errorf("last entry %q/%q: the meta bucket should come last", last.Path, last.Key)
	}

	dst := openAt(t, filepath.Join(t.TempDir(), "copy.db"))
	if _, err := dst.CreateRoom("stale"); err != nil {
		t.Fatal(err)
	}
	ownKey := bytes.Clone(dst.SigningKey())
	view := dst.At(time.Now(), 7)
	if err := view.Restore(true, want[:len(want)/2]); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored(t, dst, "signing_key"), ownKey) {
		t.Error("a reset did not keep the signing key")
	}
	if stored(t, dst, "dm_key") != nil {
		t.Error("a reset kept the key that names dm rooms")
	}
	if err := view.Restore(false, want[len(want)/2:]); err != nil {
		t.Fatal(err)
	}
	if got := storetest.Dump(t, dst, nil); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored content differs: %d entries, want %d", len(got), len(want))
	}
	if !bytes.Equal(dst.SigningKey(), src.SigningKey()) {
		t.Error("signing key in use is not the source's")
	}
	if seq, err := dst.AppliedSeq(); err != nil || seq != 7 {
		t.Errorf("AppliedSeq = %d, %v; want 7", seq, err)
	}
	secret, err := src.Room("secret")
	if err != nil {
		t.Fatal(err)
	}
	msg, _, err := dst.Append("secret", bob.ID, "bob", "next", "after the copy")
	if err != nil || msg.Seq != secret.LastSeq+1 {
		t.Errorf("next message in secret: seq %d, %v; want %d", msg.Seq, err, secret.LastSeq+1)
	}
	carl, err := dst.CreateUser("carl", "hash-c", false)
	if err != nil || carl.ID == ann.ID || carl.ID == bob.ID {
		t.Errorf("new user after the copy: %+v, %v", carl, err)
	}
	if _, err := dst.Room("stale"); err == nil {
		t.Error("the copy kept a room of its own from before the reset")
	}
}
