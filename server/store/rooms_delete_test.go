package store_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

func TestAfter(t *testing.T) {
	st := openStore(t)
	reqs := make([]store.AppendRequest, 10)
	for i := range reqs {
		reqs[i] = store.AppendRequest{Room: "general", UserID: "1", From: "alice", ClientID: strconv.Itoa(i), Text: strings.Repeat("x", 100)}
	}
	if _, err := st.AppendBatch(reqs); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name             string
		after            uint64
		limit, maxBytes  int
		wantFirst, wantN int
	}{
		{"from the start", 0, 4, 1 << 20, 1, 4},
		{"above a seq", 7, 10, 1 << 20, 8, 3},
		{"at the end", 10, 10, 1 << 20, 0, 0},
		{"bounded by bytes", 0, 10, 300, 1, 2},
		{"at least one", 2, 10, 1, 3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := st.After("general", tc.after, tc.limit, tc.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != tc.wantN || tc.wantN > 0 && msgs[0].Seq != uint64(tc.wantFirst) {
				t.Fatalf("got %d messages from %v, want %d from %d", len(msgs), msgs, tc.wantN, tc.wantFirst)
			}
			for i, m := range msgs {
				var pm proto.Message
				if err := json.Unmarshal(m.JSON, &pm); err != nil || pm.Seq != m.Seq || i > 0 && m.Seq != msgs[i-1].Seq+1 {
					t.Fatalf("message %d: %s, %v", i, m.JSON, err)
				}
			}
		})
	}
	if _, err := st.After("nope", 0, 1, 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("After of an unknown room: %v", err)
	}
}

func TestDeleteRoom(t *testing.T) {
	st := openStore(t)
	if _, err := st.CreateRoom("gone"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Append("gone", "1", "alice", "c1", "hello"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteRoom("gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Room("gone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Room after delete: %v", err)
	}
	if _, _, err := st.Append("gone", "1", "alice", "c2", "anyone?"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Append after delete: %v", err)
	}
	if err := st.DeleteRoom("gone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// A new room of that name starts afresh.
	if _, err := st.CreateRoom("gone"); err != nil {
		t.Fatal(err)
	}
	msg, _, err := st.Append("gone", "1", "alice", "c1", "again")
	if err != nil || msg.Seq != 1 {
		t.Fatalf("first message of the new room: %+v, %v", msg, err)
	}
}
