package client

import (
	"cmp"
	"context"
	"net/url"
	"slices"
	"time"

	"kaiwa/shared/proto"
)

// roomCount is what the session knows of one room as its user sees it: the room object and
// the unread state, kept under Session.mu.
//
// The counts are exact by construction. A room object from the server (a listing, GET of the
// room, a room frame) is a seed: it counts the unread messages and mentions above its read_seq
// up to its last_seq, the base. Above the base the session counts what it sees itself: every
// message of a joined room reaches it once, in seq order, so the plain messages from other
// users above the read marker are exactly those it holds in unread. What it sees before the
// first seed is held the same way, so that an object answered before those messages arrived
// does not lose them. A message that skips a seq, or a first seed that stops short of the
// first message seen (the room was joined from a point later than the seed), means the
// session missed some: it fetches the room object again. When the marker moves below the
// base, the seed alone does not say how many of its messages remain above it: until a fresh
// room object arrives (the session fetches one when the server confirms such a marker), the
// count is bounded by both the seed's count and the number of seqs left up to the base.
type roomCount struct {
	info   proto.Room // as last seen, with a live last_seq, last_ts and read_seq
	listed bool       // info came from the server: the room is in RoomList

	seeded       bool
	base         uint64 // last_seq of the seed
	seedRead     uint64 // read_seq of the seed
	baseUnread   int
	baseMentions int
	top          uint64   // the highest seq accounted for: base, or a message seen above it
	from         uint64   // the first message seen before the first seed, if any
	unread       []uint64 // seqs above base and above the marker of plain messages from others
	mentions     []uint64 // those of them that mention the user

	// What was last reported by EventUnread.
	shownUnread, shownMentions int
	shownRead                  uint64

	fetching, stale bool // a fetch of the room object is in flight; another is wanted after it
	asked           bool // the room object was fetched once for a room joined without one
}

// counts returns the unread messages and mentions of the room, each at most proto.UnreadMax.
func (rc *roomCount) counts() (unread, mentions int) {
	if !rc.seeded || !rc.info.Member {
		return 0, 0
	}
	read := rc.info.ReadSeq
	bu, bm := rc.baseUnread, rc.baseMentions
	switch {
	case read <= rc.seedRead:
	case read >= rc.base:
		bu, bm = 0, 0
	default:
		left := int(min(rc.base-read, proto.UnreadMax))
		bu, bm = min(bu, left), min(bm, left)
	}
	return min(bu+len(rc.unread), proto.UnreadMax), min(bm+len(rc.mentions), proto.UnreadMax)
}

// trim drops what no longer counts: seqs at or below the marker and the base, and beyond the
// newest proto.UnreadMax (the count stops there anyway, and the marker only moves forward).
func (rc *roomCount) trim() {
	floor := max(rc.info.ReadSeq, rc.base)
	drop := func(seqs []uint64) []uint64 {
		i, _ := slices.BinarySearch(seqs, floor+1)
		seqs = seqs[i:]
		if len(seqs) > proto.UnreadMax {
			seqs = seqs[len(seqs)-proto.UnreadMax:]
		}
		return slices.Clip(seqs)
	}
	rc.unread, rc.mentions = drop(rc.unread), drop(rc.mentions)
}

// view returns the room object with the live counts.
func (rc *roomCount) view() proto.Room {
	r := rc.info
	r.Members = slices.Clone(r.Members)
	r.Unread, r.Mentions = rc.counts()
	return r
}

func (s *Session) roomCountLocked(room string) *roomCount {
	rc := s.counts[room]
	if rc == nil {
		rc = &roomCount{info: proto.Room{Name: room}}
		s.counts[room] = rc
	}
	return rc
}

// changedLocked reports the room's counts and marker if they differ from what was last
// reported.
func (s *Session) changedLocked(rc *roomCount) {
	unread, mentions := rc.counts()
	if unread == rc.shownUnread && mentions == rc.shownMentions && rc.info.ReadSeq == rc.shownRead {
		return
	}
	rc.shownUnread, rc.shownMentions, rc.shownRead = unread, mentions, rc.info.ReadSeq
	s.emitLocked(Event{Kind: EventUnread, Room: rc.info.Name, Seq: rc.info.ReadSeq, Unread: unread, Mentions: mentions})
}

// seedLocked takes a room object from the server. Its counts replace the session's unless
// they are older than what the session has counted (an answer overtaken by messages already
// counted from a newer object); its read marker never moves back. A room new to the list, or
// whose kind, membership or members changed, is reported by EventRoom. It reports whether the
// messages seen before the first seed do not follow it: then the session missed some, and
// should fetch the room object again.
func (s *Session) seedLocked(r proto.Room) (missed bool) {
	rc := s.roomCountLocked(r.Name)
	changed := !rc.listed || rc.info.Kind != r.Kind || rc.info.Member != r.Member || !slices.Equal(rc.info.Members, r.Members)
	rc.listed = true
	rc.info.Kind, rc.info.Member, rc.info.Members, rc.info.CreatedAt = r.Kind, r.Member, slices.Clone(r.Members), r.CreatedAt
	rc.info.LastSeq = max(rc.info.LastSeq, r.LastSeq)
	if r.LastTS.After(rc.info.LastTS) {
		rc.info.LastTS = r.LastTS
	}
	movedRead := r.ReadSeq > rc.info.ReadSeq
	rc.info.ReadSeq = max(rc.info.ReadSeq, r.ReadSeq)
	if !rc.seeded || r.LastSeq >= rc.base {
		missed = !rc.seeded && rc.from > r.LastSeq+1
		rc.seeded, rc.from = true, 0
		rc.base, rc.seedRead = r.LastSeq, r.ReadSeq
		rc.baseUnread, rc.baseMentions = r.Unread, r.Mentions
		rc.top = max(rc.top, r.LastSeq)
	}
	rc.trim()
	if movedRead {
		s.emitLocked(Event{Kind: EventRead, Room: r.Name, Seq: rc.info.ReadSeq})
	}
	s.changedLocked(rc)
	if changed {
		s.emitLocked(Event{Kind: EventRoom, Room: r.Name, RoomInfo: rc.view()})
	}
	return missed
}

// readLocked moves the room's read marker forward to seq, and reports whether it moved.
func (s *Session) readLocked(room string, seq uint64) bool {
	rc := s.roomCountLocked(room)
	if seq <= rc.info.ReadSeq {
		return false
	}
	rc.info.ReadSeq = seq
	rc.trim()
	s.emitLocked(Event{Kind: EventRead, Room: room, Seq: seq})
	s.changedLocked(rc)
	return true
}

// countLocked accounts for a message seen on a joined room, each seq once, in order. It
// reports whether the session missed messages before it and should fetch the room object.
func (s *Session) countLocked(m *proto.Message) (missed bool) {
	rc := s.roomCountLocked(m.Room)
	rc.info.LastSeq = max(rc.info.LastSeq, m.Seq)
	if m.TS.After(rc.info.LastTS) {
		rc.info.LastTS = m.TS
	}
	me := s.token.User.Name
	if me != "" && m.From == me {
		// Storing a message moves its sender's marker to it.
		s.readLocked(m.Room, m.Seq)
	}
	if m.Seq <= rc.top {
		return false // counted in the seed
	}
	if rc.seeded {
		missed = m.Seq > rc.top+1
	} else if rc.from == 0 {
		rc.from = m.Seq // kept until a seed tells what lies below
	}
	rc.top = m.Seq
	if m.Kind == "" && m.From != me && m.Seq > rc.info.ReadSeq {
		rc.unread = append(rc.unread, m.Seq)
		if me != "" && slices.Contains(m.Mentions, me) {
			rc.mentions = append(rc.mentions, m.Seq)
		}
		rc.trim()
	}
	s.changedLocked(rc)
	return missed
}

// Unread returns the unread messages and mentions of a room and the user's read marker in it,
// as the session knows them now (see EventUnread). The counts stop at proto.UnreadMax. It
// never waits.
func (s *Session) Unread(room string) (unread, mentions int, readSeq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rc := s.counts[room]
	if rc == nil {
		return 0, 0, 0
	}
	unread, mentions = rc.counts()
	return unread, mentions, rc.info.ReadSeq
}

// UnreadTotal returns the unread messages and mentions of every room the user is a member of
// (each room's counts stopping at proto.UnreadMax), for a tab title or an app badge. It never
// waits.
func (s *Session) UnreadTotal() (unread, mentions int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rc := range s.counts {
		u, m := rc.counts()
		unread, mentions = unread+u, mentions+m
	}
	return unread, mentions
}

// RoomList returns the rooms as the session knows them, newest last_ts first, then by name:
// every room object the server gave it (Rooms, Room, CreateRoom, room frames), kept live —
// last_seq and last_ts from the messages of joined rooms, read_seq, unread and mentions as
// Unread tells them, membership from room frames. It never waits.
func (s *Session) RoomList() []proto.Room {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]proto.Room, 0, len(s.counts))
	for _, rc := range s.counts {
		if rc.listed {
			list = append(list, rc.view())
		}
	}
	slices.SortFunc(list, func(a, b proto.Room) int {
		if c := b.LastTS.Compare(a.LastTS); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return list
}

// Room reads one room object (GET /api/rooms/{room}), which also refreshes the session's
// room list and counts.
func (s *Session) Room(ctx context.Context, room string) (proto.Room, error) {
	if err := checkRoomName(room); err != nil {
		return proto.Room{}, err
	}
	var rb proto.RoomBody
	if err := s.Call(ctx, "GET", "/api/rooms/"+url.PathEscape(room), nil, &rb); err != nil {
		return proto.Room{}, err
	}
	s.seed(rb.Room)
	return rb.Room, nil
}

func (s *Session) seed(rooms ...proto.Room) {
	var missed []string
	s.mu.Lock()
	for _, r := range rooms {
		if s.seedLocked(r) {
			missed = append(missed, r.Name)
		}
	}
	s.mu.Unlock()
	for _, room := range missed {
		s.do(func() { s.fetchRoom(room) })
	}
}

// fetchRoom fetches a room object to make its counts exact again. Run goroutine only.
func (s *Session) fetchRoom(room string) {
	if s.over {
		return
	}
	s.mu.Lock()
	rc := s.roomCountLocked(room)
	if rc.fetching {
		rc.stale = true
		s.mu.Unlock()
		return
	}
	rc.fetching = true
	s.mu.Unlock()
	ctx := s.runCtx
	go func() {
		ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
		_, err := s.Room(ctx, room)
		cancel()
		s.do(func() {
			s.mu.Lock()
			again := false
			if rc := s.counts[room]; rc != nil {
				again = rc.stale && err == nil
				rc.fetching, rc.stale = false, false
			}
			s.mu.Unlock()
			if err != nil {
				s.logf("room %s: %v", room, err)
			}
			if again {
				s.fetchRoom(room)
			}
		})
	}()
}

// listRooms lists the user's rooms, which seeds the room list and the counts, and joins every
// room the user is a member of (Options.MemberRooms). Run goroutine only.
func (s *Session) listRooms() {
	if s.listing || s.over {
		return
	}
	s.listing = true
	ctx := s.runCtx
	go func() {
		ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
		rooms, err := s.Rooms(ctx)
		cancel()
		s.do(func() {
			s.listing = false
			if err != nil {
				s.logf("list rooms: %v", err) // the next reconnect tries again
				return
			}
			for _, r := range rooms {
				if r.Member {
					s.join(r.Name, r.LastSeq, true)
				}
			}
		})
	}()
}

// readMark is a read marker waiting to reach the server. Run goroutine only.
type readMark struct {
	want   uint64    // the highest seq asked for
	sent   uint64    // the seq last sent, on sentOn
	sentOn *socket   //
	at     time.Time // when it was last sent
}

// MarkRead moves the user's read marker of a room forward to seq (a lower seq changes
// nothing). The session counts it at once (EventRead, EventUnread) and tells the server with
// a read frame, at most one per room per second, carrying the highest seq asked for by then;
// a marker not yet confirmed by the server's read frame is sent again on a new socket. The
// frame waits until the room is joined.
func (s *Session) MarkRead(room string, seq uint64) {
	if seq == 0 || !proto.ValidRoomName(room) {
		return
	}
	s.mu.Lock()
	if rc := s.counts[room]; rc != nil && rc.seeded {
		seq = min(seq, max(rc.top, rc.info.LastSeq)) // the server clamps to last_seq as well
	}
	moved := s.readLocked(room, seq)
	s.mu.Unlock()
	if !moved {
		return
	}
	s.do(func() {
		m := s.marks[room]
		if m == nil {
			m = &readMark{}
			s.marks[room] = m
		}
		m.want = max(m.want, seq)
		s.flushReads()
	})
}

// flushReads sends the read markers due on the socket in use: to a room it has joined, once
// every join it asked for is answered (an error frame about a read would otherwise be taken
// for the refusal of a join).
func (s *Session) flushReads() {
	sk := s.cur
	if sk == nil || !sk.ready || len(sk.joins) > 0 {
		return
	}
	now := time.Now()
	for room, m := range s.marks {
		if m.sentOn == sk && m.sent >= m.want || now.Sub(m.at) < time.Second || !sk.joined[room] {
			continue
		}
		m.sent, m.sentOn, m.at = m.want, sk, now
		s.write(sk, proto.Read{Type: proto.TypeRead, Room: room, Seq: m.want})
	}
}

// readFrame handles the server's read frame: the marker moved, from this device or another.
func (s *Session) readFrame(room string, seq uint64) {
	if m := s.marks[room]; m != nil && seq >= m.want {
		delete(s.marks, room)
	}
	s.mu.Lock()
	s.readLocked(room, seq)
	rc := s.counts[room]
	// A marker below the seed's base leaves its count unknown: ask the server.
	fetch := rc != nil && rc.seeded && seq > rc.seedRead && seq < rc.base && (rc.baseUnread > 0 || rc.baseMentions > 0)
	s.mu.Unlock()
	if fetch {
		s.fetchRoom(room)
	}
}

// roomFrame handles the server's room frame: the user became or stopped being a member of a
// room, or its members changed.
func (s *Session) roomFrame(r proto.Room) {
	s.mu.Lock()
	missed := s.seedLocked(r)
	if !r.Member && r.Kind != proto.RoomPublic {
		delete(s.counts, r.Name) // it no longer exists for the user
		missed = false
	}
	s.mu.Unlock()
	if missed {
		s.fetchRoom(r.Name)
	}
	switch _, joined := s.rooms[r.Name]; {
	case r.Member && !joined:
		s.join(r.Name, r.LastSeq, true)
	case !r.Member && joined:
		s.leave(r.Name)
	}
}
