package client

import (
	"testing"
	"time"

	"kaiwa/shared/proto"
)

// step is one thing that happens to a room's counts, and what they must be after it.
type step struct {
	seed    *proto.Room    // a room object from the server
	msg     *proto.Message // a message seen on the room
	read    uint64         // a read marker from the server
	missed  bool           // the message must be reported as following a gap
	unread  int
	ment    int
	readSeq uint64
}

func plain(seq uint64, from string, mentions ...string) *proto.Message {
	return &proto.Message{Room: "r", Seq: seq, From: from, Text: "hi", TS: time.Unix(int64(seq), 0), Mentions: mentions}
}

func room(lastSeq, readSeq uint64, unread, mentions int) *proto.Room {
	return &proto.Room{Name: "r", Kind: proto.RoomPublic, Member: true, LastSeq: lastSeq, ReadSeq: readSeq, Unread: unread, Mentions: mentions}
}

// TestUnreadCounts: the counts a session keeps from room objects and the messages it sees are
// those the server would answer (only counted up to what the session could know).
func TestUnreadCounts(t *testing.T) {
	t.Parallel()
	edit := &proto.Message{Room: "r", Seq: 13, From: "bob", Kind: proto.KindEdit, Target: 11, Mentions: []string{"alice"}}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"messages from others count, mentions of the user too", []step{
			{seed: room(10, 8, 2, 0), unread: 2, readSeq: 8},
			{msg: plain(11, "bob"), unread: 3, readSeq: 8},
			{msg: plain(12, "bob", "alice"), unread: 4, ment: 1, readSeq: 8},
			{msg: plain(13, "bob", "carol"), unread: 5, ment: 1, readSeq: 8},
		}},
		{"edits and deletions do not count", []step{
			{seed: room(12, 12, 0, 0), readSeq: 12},
			{msg: edit, readSeq: 12},
			{msg: &proto.Message{Room: "r", Seq: 14, From: "bob", Kind: proto.KindDelete, Target: 11}, readSeq: 12},
		}},
		{"an own message moves the marker", []step{
			{seed: room(10, 8, 2, 1), unread: 2, ment: 1, readSeq: 8},
			{msg: plain(11, "bob", "alice"), unread: 3, ment: 2, readSeq: 8},
			{msg: plain(12, "alice"), readSeq: 12},
			{msg: plain(13, "bob"), unread: 1, readSeq: 12},
		}},
		{"messages already in the seed are not counted twice", []step{
			{msg: plain(9, "bob")}, // seen before the listing answered
			{seed: room(10, 5, 5, 0), unread: 5, readSeq: 5},
			{msg: plain(10, "bob"), unread: 5, readSeq: 5},
			{msg: plain(11, "bob"), unread: 6, readSeq: 5},
		}},
		{"messages seen before the first seed count above its base", []step{
			{msg: plain(10, "bob")},
			{msg: plain(11, "bob", "alice")},
			{seed: room(10, 5, 5, 0), unread: 6, ment: 1, readSeq: 5},
			{msg: plain(12, "bob"), unread: 7, ment: 1, readSeq: 5},
		}},
		{"a first seed below the messages seen is a gap", []step{
			{msg: plain(12, "bob")},
			{seed: room(10, 5, 5, 0), missed: true, unread: 6, readSeq: 5},
		}},
		{"a seed older than what was counted changes no count", []step{
			{seed: room(10, 5, 5, 0), unread: 5, readSeq: 5},
			{msg: plain(11, "bob"), unread: 6, readSeq: 5},
			{seed: room(9, 5, 4, 0), unread: 6, readSeq: 5},
			{seed: room(11, 5, 6, 0), unread: 6, readSeq: 5},
		}},
		{"a marker at or above the base leaves what was seen above it", []step{
			{seed: room(10, 5, 5, 2), unread: 5, ment: 2, readSeq: 5},
			{msg: plain(11, "bob", "alice"), unread: 6, ment: 3, readSeq: 5},
			{msg: plain(12, "bob"), unread: 7, ment: 3, readSeq: 5},
			{read: 11, unread: 1, readSeq: 11},
			{read: 9, unread: 1, readSeq: 11}, // never back
			{read: 12, readSeq: 12},
		}},
		{"a marker below the base is bounded, then a new seed is exact", []step{
			{seed: room(10, 2, 8, 3), unread: 8, ment: 3, readSeq: 2},
			{read: 8, unread: 2, ment: 2, readSeq: 8},
			{seed: room(10, 8, 1, 0), unread: 1, readSeq: 8},
		}},
		{"a gap is reported", []step{
			{seed: room(10, 10, 0, 0), readSeq: 10},
			{msg: plain(11, "bob"), unread: 1, readSeq: 10},
			{msg: plain(14, "bob"), missed: true, unread: 2, readSeq: 10},
			{seed: room(14, 10, 4, 0), unread: 4, readSeq: 10},
		}},
		{"not a member: nothing counts", []step{
			{seed: &proto.Room{Name: "r", Kind: proto.RoomPublic, LastSeq: 10}},
			{msg: plain(11, "bob", "alice")},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSession(&API{}, Options{Token: &proto.TokenBody{User: proto.User{Name: "alice"}}})
			for i, st := range tc.steps {
				s.mu.Lock()
				missed := false
				switch {
				case st.seed != nil:
					missed = s.seedLocked(*st.seed)
				case st.msg != nil:
					missed = s.countLocked(st.msg)
				default:
					s.readLocked("r", st.read)
				}
				s.mu.Unlock()
				unread, ment, readSeq := s.Unread("r")
				if unread != st.unread || ment != st.ment || readSeq != st.readSeq || missed != st.missed {
					t.Fatalf("step %d: unread %d, mentions %d, read %d, missed %v; want %d, %d, %d, %v",
						i, unread, ment, readSeq, missed, st.unread, st.ment, st.readSeq, st.missed)
				}
			}
		})
	}
}

// TestUnreadStopsAtMax: counts stop at proto.UnreadMax however many messages arrive, and stay
// exact when the marker then moves into what was kept.
func TestUnreadStopsAtMax(t *testing.T) {
	t.Parallel()
	s := NewSession(&API{}, Options{Token: &proto.TokenBody{User: proto.User{Name: "alice"}}})
	s.mu.Lock()
	s.seedLocked(*room(0, 0, 0, 0))
	const n = proto.UnreadMax + 500
	for seq := uint64(1); seq <= n; seq++ {
		s.countLocked(plain(seq, "bob", "alice"))
	}
	s.mu.Unlock()
	if unread, ment, _ := s.Unread("r"); unread != proto.UnreadMax || ment != proto.UnreadMax {
		t.Fatalf("unread %d, mentions %d after %d messages; want %d each", unread, ment, n, proto.UnreadMax)
	}
	s.mu.Lock()
	s.readLocked("r", n-10)
	s.mu.Unlock()
	if unread, ment, _ := s.Unread("r"); unread != 10 || ment != 10 {
		t.Fatalf("unread %d, mentions %d with 10 messages above the marker", unread, ment)
	}
	if total, _ := s.UnreadTotal(); total != 10 {
		t.Fatalf("total %d, want 10", total)
	}
}

// TestRoomListFromObjects: the room list holds the rooms the server described, newest first,
// keeps last_ts live from messages, and drops a private room the user was removed from.
func TestRoomListFromObjects(t *testing.T) {
	t.Parallel()
	s := NewSession(&API{}, Options{Token: &proto.TokenBody{User: proto.User{Name: "alice"}}})
	t0 := time.Unix(1000, 0)
	s.seed(
		proto.Room{Name: "general", Kind: proto.RoomPublic, Member: true, LastTS: t0},
		proto.Room{Name: "ops", Kind: proto.RoomPrivate, Member: true, Members: []string{"alice", "bob"}, LastTS: t0.Add(time.Second)},
	)
	names := func() []string {
		var list []string
		for _, r := range s.RoomList() {
			list = append(list, r.Name)
		}
		return list
	}
	if got := names(); len(got) != 2 || got[0] != "ops" || got[1] != "general" {
		t.Fatalf("rooms %v, want ops, general", got)
	}
	s.mu.Lock()
	s.countLocked(&proto.Message{Room: "general", Seq: 1, From: "bob", TS: t0.Add(time.Minute)})
	s.mu.Unlock()
	if got := names(); got[0] != "general" {
		t.Fatalf("rooms %v, want general first after its new message", got)
	}
	s.roomFrame(proto.Room{Name: "ops", Kind: proto.RoomPrivate, Member: false})
	if got := names(); len(got) != 1 || got[0] != "general" {
		t.Fatalf("rooms %v after removal from ops, want general", got)
	}
}
