package store

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"kaiwa/shared/proto"
)

// Errors of membership and of edits, which callers branch on.
var (
	// ErrForbidden: the membership change is not allowed (joining a dm, adding someone else to
	// a public room, leaving general, removing another member without being the creator or an
	// administrator).
	ErrForbidden = errors.New("forbidden")
	// ErrNotMember: a read marker for a public room the user is not a member of.
	ErrNotMember = errors.New("not a member")
	// ErrNotAllowed: editing someone else's message, or deleting one without the right.
	ErrNotAllowed = errors.New("not allowed")
	// ErrInvalidTarget: an edit or deletion of a missing seq, of an edit or deletion, or of a
	// deleted message.
	ErrInvalidTarget = errors.New("invalid target")
)

// Member is one member of a room.
type Member struct {
	ID, Name string
}

// CanRead returns the kind of a room that the user may read, and is the one authorization check
// of every path that reads or writes a room: ErrNotFound if the room does not exist or is a
// private or dm room the user is not a member of, so that such a room is indistinguishable from
// a missing one.
func (s *Store) CanRead(userID, room string) (proto.RoomKind, error) {
	var kind proto.RoomKind
	err := s.db.View(func(tx *bolt.Tx) error {
		_, info, err := readable(tx, userID, room)
		kind = info.Kind
		return err
	})
	if err != nil {
		return "", fmt.Errorf("store: room %q: %w", room, err)
	}
	return kind, nil
}

// readable returns the bucket and info of a room the user may read; see CanRead.
func readable(tx *bolt.Tx, userID, room string) (*bolt.Bucket, roomInfo, error) {
	rb := tx.Bucket(bucketRooms).Bucket([]byte(room))
	if rb == nil {
		return nil, roomInfo{}, ErrNotFound
	}
	info, err := readInfo(rb)
	if err != nil {
		return nil, roomInfo{}, err
	}
	if info.Kind != proto.RoomPublic {
		if _, ok := memberRead(rb, userID); !ok {
			return nil, roomInfo{}, ErrNotFound
		}
	}
	return rb, info, nil
}

// RoomFor returns a room as the user sees it (membership, members of a private or dm room, the
// user's read marker and counts), or ErrNotFound where CanRead refuses.
func (s *Store) RoomFor(userID, room string) (proto.Room, error) {
	var r proto.Room
	err := s.db.View(func(tx *bolt.Tx) error {
		rb, _, err := readable(tx, userID, room)
		if err != nil {
			return err
		}
		r, err = view(tx, rb, userID)
		return err
	})
	if err != nil {
		return proto.Room{}, fmt.Errorf("store: room %q: %w", room, err)
	}
	return r, nil
}

// RoomsFor lists the rooms the user is a member of and every public room, as the user sees
// them, newest LastTS first, then by name. Its cost grows with the number of those rooms, not
// with their history: a few bbolt lookups per room.
func (s *Store) RoomsFor(userID string) ([]proto.Room, error) {
	rooms := []proto.Room{}
	err := s.db.View(func(tx *bolt.Tx) error {
		names := map[string]bool{}
		c := tx.Bucket(bucketMemberships).Cursor()
		prefix := append([]byte(userID), 0)
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			names[string(k[len(prefix):])] = true
		}
		tx.Bucket(bucketPublic).ForEach(func(k, _ []byte) error {
			names[string(k)] = true
			return nil
		})
		all := tx.Bucket(bucketRooms)
		rooms = slices.Grow(rooms, len(names))
		for name := range names {
			rb := all.Bucket([]byte(name))
			if rb == nil {
				continue
			}
			r, err := view(tx, rb, userID)
			if err != nil {
				return err
			}
			rooms = append(rooms, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: rooms of %s: %w", userID, err)
	}
	slices.SortFunc(rooms, func(a, b proto.Room) int {
		if c := b.LastTS.Compare(a.LastTS); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return rooms, nil
}

// view is a room as the user sees it.
//
// Unread counts never scan history. A member's unread count is the number of plain messages
// above the marker from others. The sender's marker moves to every message it stores and
// markers only move forward, so no member has a message of their own above their marker, and
// unread = plainAt(last_seq) − plainAt(read_seq), where plainAt(S) — the number of plain
// messages with seq ≤ S — is S minus the running count of edits and deletions kept at each of
// their seqs (bucket edits), one cursor seek. Mentions are kept per (user, room, seq) until the
// marker passes them, and counted up to UnreadMax.
func view(tx *bolt.Tx, rb *bolt.Bucket, userID string) (proto.Room, error) {
	info, err := readInfo(rb)
	if err != nil {
		return proto.Room{}, err
	}
	r := bareRoom(rb, info)
	members := rb.Bucket(bucketMembers)
	if v := members.Get([]byte(userID)); len(v) >= 8 {
		read := binary.BigEndian.Uint64(v)
		r.Member, r.ReadSeq = true, read
		edits := rb.Bucket(bucketEdits)
		r.Unread = int(min(plainAt(edits, r.LastSeq)-plainAt(edits, min(read, r.LastSeq)), proto.UnreadMax))
		prefix := mentionPrefix(userID, info.Name)
		c := tx.Bucket(bucketMentions).Cursor()
		for k, _ := c.Seek(append(prefix, u64(read+1)...)); k != nil && bytes.HasPrefix(k, prefix) && r.Mentions < proto.UnreadMax; k, _ = c.Next() {
			r.Mentions++
		}
	}
	if info.Kind != proto.RoomPublic {
		r.Members = []string{}
		members.ForEach(func(_, v []byte) error {
			r.Members = append(r.Members, string(v[8:]))
			return nil
		})
		slices.Sort(r.Members)
	}
	return r, nil
}

// plainAt is the number of plain messages with seq ≤ seq, from a room's edits bucket.
func plainAt(edits *bolt.Bucket, seq uint64) uint64 {
	if seq == 0 {
		return 0
	}
	c := edits.Cursor()
	k, v := c.Seek(u64(seq))
	if k == nil || binary.BigEndian.Uint64(k) > seq {
		k, v = c.Prev()
	}
	if k == nil {
		return seq
	}
	return seq - binary.BigEndian.Uint64(v)
}

// Members lists a room's members by name, whatever its kind. It authorizes nothing: it is for
// the server, to tell members of changes.
func (s *Store) Members(room string) ([]Member, error) {
	var members []Member
	err := s.db.View(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bucketRooms).Bucket([]byte(room))
		if rb == nil {
			return ErrNotFound
		}
		return rb.Bucket(bucketMembers).ForEach(func(k, v []byte) error {
			members = append(members, Member{ID: string(k), Name: string(v[8:])})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: members of %q: %w", room, err)
	}
	slices.SortFunc(members, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return members, nil
}

// Memberships lists the names of the rooms the user is a member of, sorted.
func (s *Store) Memberships(userID string) ([]string, error) {
	var names []string
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketMemberships).Cursor()
		prefix := append([]byte(userID), 0)
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			names = append(names, string(k[len(prefix):]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: memberships of %s: %w", userID, err)
	}
	return names, nil
}

// AddMember makes userID a member of a room on behalf of byID, and reports whether it was not
// one already. Public room: only oneself (ErrForbidden otherwise). Private room: any member adds
// anyone. Dm: ErrForbidden. ErrNotFound where CanRead refuses byID, or for an unknown userID.
// A new member's read marker starts at the room's last seq: joining shows no old unread.
func (s *Store) AddMember(byID, room, userID string) (bool, error) {
	var added bool
	var tell []string
	err := s.update(func(tx *bolt.Tx) error {
		rb, info, err := readable(tx, byID, room)
		if err != nil {
			return err
		}
		switch {
		case info.Kind == proto.RoomDM:
			return ErrForbidden
		case info.Kind == proto.RoomPublic && userID != byID:
			return ErrForbidden
		}
		u, err := userByID(tx, userID)
		if err != nil {
			return err
		}
		if _, ok := memberRead(rb, userID); ok {
			return nil
		}
		added = true
		if err := putMember(tx, rb, room, userID, u.Name, rb.Bucket(bucketMsgs).Sequence()); err != nil {
			return err
		}
		tell = concerned(rb, info, userID)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: add %s to %q: %w", userID, room, err)
	}
	s.membershipChanged(room, tell)
	return added, nil
}

// RemoveMember ends userID's membership of a room on behalf of byID, and reports whether there
// was one. Oneself (leaving), or another by the room's creator or an administrator; general and
// dm rooms: ErrForbidden. ErrNotFound where CanRead refuses byID. What the member wrote stays.
func (s *Store) RemoveMember(byID, room, userID string) (bool, error) {
	var removed bool
	var tell []string
	err := s.update(func(tx *bolt.Tx) error {
		rb, info, err := readable(tx, byID, room)
		if err != nil {
			return err
		}
		if room == DefaultRoom || info.Kind == proto.RoomDM {
			return ErrForbidden
		}
		if userID != byID && (info.Creator == "" || info.Creator != byID) {
			admin, err := isAdmin(tx, byID)
			if err != nil {
				return err
			}
			if !admin {
				return ErrForbidden
			}
		}
		if _, ok := memberRead(rb, userID); !ok {
			return nil
		}
		removed = true
		if err := deleteMember(tx, rb, room, userID); err != nil {
			return err
		}
		tell = concerned(rb, info, userID)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: remove %s from %q: %w", userID, room, err)
	}
	s.membershipChanged(room, tell)
	return removed, nil
}

// SetRead moves the user's read marker of a room forward to seq, clamped to the room's last
// seq, and returns the marker (unchanged when seq is not above it). ErrNotFound where CanRead
// refuses; ErrNotMember for a public room the user is not a member of.
func (s *Store) SetRead(userID, room string, seq uint64) (uint64, error) {
	var read uint64
	err := s.update(func(tx *bolt.Tx) error {
		rb, _, err := readable(tx, userID, room)
		if err != nil {
			return err
		}
		old, ok := memberRead(rb, userID)
		if !ok {
			return ErrNotMember
		}
		read = max(old, min(seq, rb.Bucket(bucketMsgs).Sequence()))
		if read == old {
			return nil
		}
		v := rb.Bucket(bucketMembers).Get([]byte(userID))
		if err := putMember(tx, rb, room, userID, string(v[8:]), read); err != nil {
			return err
		}
		return pruneMentions(tx, userID, room, read)
	})
	if err != nil {
		return 0, fmt.Errorf("store: read marker of %q: %w", room, err)
	}
	if o := s.observer(); o != nil {
		o.ReadMoved(userID, room, read)
	}
	return read, nil
}

// DM returns the one dm room of two users, as userID sees it, creating it (created true) when
// there is none; both are its members, their markers at 0. Its name is "dm-" and 16 of a-z 0-9
// derived from both ids with a key kept in the database, so that nobody can tell from a name
// who talks to whom, nor guess one. ErrNotFound for an unknown otherID; ErrForbidden for
// oneself.
func (s *Store) DM(userID, otherID string) (room proto.Room, created bool, err error) {
	if userID == otherID {
		return proto.Room{}, false, fmt.Errorf("store: dm with oneself: %w", ErrForbidden)
	}
	var tell []string
	err = s.update(func(tx *bolt.Tx) error {
		me, err := userByID(tx, userID)
		if err != nil {
			return err
		}
		other, err := userByID(tx, otherID)
		if err != nil {
			return err
		}
		name := dmName(tx.Bucket(bucketMeta).Get(keyDMKey), userID, otherID)
		rb := tx.Bucket(bucketRooms).Bucket([]byte(name))
		if rb == nil {
			created = true
			info := roomInfo{Name: name, CreatedAt: s.now(), Kind: proto.RoomDM, Creator: userID}
			if rb, err = createRoom(tx, info); err != nil {
				return err
			}
			if err := putMember(tx, rb, name, userID, me.Name, 0); err != nil {
				return err
			}
			if err := putMember(tx, rb, name, otherID, other.Name, 0); err != nil {
				return err
			}
			tell = concerned(rb, info, userID)
		}
		room, err = view(tx, rb, userID)
		if err == nil && !room.Member {
			err = fmt.Errorf("room %q is not their dm: %w", name, ErrRoomExists)
		}
		return err
	})
	if err != nil {
		return proto.Room{}, false, fmt.Errorf("store: dm: %w", err)
	}
	s.membershipChanged(room.Name, tell)
	return room, created, nil
}

func dmName(key []byte, a, b string) string {
	if a > b {
		a, b = b, a
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(a))
	mac.Write([]byte{0})
	mac.Write([]byte(b))
	sum := mac.Sum(nil)
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	name := []byte(proto.DMPrefix)
	for _, c := range sum[:16] {
		name = append(name, alphabet[int(c)%len(alphabet)])
	}
	return string(name)
}

// concerned returns whom to tell of a change of userID's membership of a room: that user and,
// in a room with a member list (private, dm), every member.
func concerned(rb *bolt.Bucket, info roomInfo, userID string) []string {
	ids := []string{userID}
	if info.Kind == proto.RoomPublic {
		return ids
	}
	rb.Bucket(bucketMembers).ForEach(func(k, _ []byte) error {
		if string(k) != userID {
			ids = append(ids, string(k))
		}
		return nil
	})
	return ids
}

// membershipChanged tells the Observer of a committed membership change, if anyone is to be
// told.
func (s *Store) membershipChanged(room string, userIDs []string) {
	if o := s.observer(); o != nil && len(userIDs) > 0 {
		o.MembershipChanged(room, userIDs)
	}
}

// memberRead returns the user's read marker of a room and whether the user is a member.
func memberRead(rb *bolt.Bucket, userID string) (uint64, bool) {
	v := rb.Bucket(bucketMembers).Get([]byte(userID))
	if len(v) < 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(v), true
}

// putMember stores a membership (read marker and name) and its entry in the user's index.
func putMember(tx *bolt.Tx, rb *bolt.Bucket, room, userID, name string, read uint64) error {
	v := append(u64(read), name...)
	if err := rb.Bucket(bucketMembers).Put([]byte(userID), v); err != nil {
		return err
	}
	return tx.Bucket(bucketMemberships).Put(membershipKey(userID, room), nil)
}

func deleteMember(tx *bolt.Tx, rb *bolt.Bucket, room, userID string) error {
	if err := rb.Bucket(bucketMembers).Delete([]byte(userID)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketMemberships).Delete(membershipKey(userID, room)); err != nil {
		return err
	}
	return pruneMentions(tx, userID, room, ^uint64(0))
}

// forgetRoom removes what refers to a room outside its own bucket: memberships, mentions and
// the public listing. Deleting a room calls it before deleting the room's bucket.
func forgetRoom(tx *bolt.Tx, room string) error {
	rb := tx.Bucket(bucketRooms).Bucket([]byte(room))
	if rb == nil {
		return nil
	}
	var ids []string
	rb.Bucket(bucketMembers).ForEach(func(k, _ []byte) error {
		ids = append(ids, string(k))
		return nil
	})
	for _, id := range ids {
		if err := deleteMember(tx, rb, room, id); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketPublic).Delete([]byte(room))
}

func membershipKey(userID, room string) []byte {
	k := make([]byte, 0, len(userID)+1+len(room))
	return append(append(append(k, userID...), 0), room...)
}

func mentionPrefix(userID, room string) []byte {
	k := make([]byte, 0, len(userID)+len(room)+10)
	return append(append(append(append(k, userID...), 0), room...), 0)
}

func mentionKey(userID, room string, seq uint64) []byte {
	return append(mentionPrefix(userID, room), u64(seq)...)
}

// pruneMentions deletes the user's mentions in a room at or below seq.
func pruneMentions(tx *bolt.Tx, userID, room string, seq uint64) error {
	prefix := mentionPrefix(userID, room)
	c := tx.Bucket(bucketMentions).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if binary.BigEndian.Uint64(k[len(prefix):]) > seq {
			return nil
		}
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

func isAdmin(tx *bolt.Tx, userID string) (bool, error) {
	u, err := userByID(tx, userID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return u.Admin, err
}

func userByID(tx *bolt.Tx, id string) (User, error) {
	var u User
	err := getJSON(tx.Bucket(bucketUsers), []byte(id), &u)
	return u, err
}

// conversations is schema 2 (§7): room kinds, stored membership, read markers, mentions, dms.
// Existing rooms become public. Every user becomes a member of general, and every author a
// member of each room they wrote in, their read marker at the room's last seq, so nobody
// starts with a flood of unread. Messages are neither rewritten nor renumbered: a record
// stored before is a plain message.
func conversations(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketMemberships, bucketMentions, bucketPublic} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if err := tx.Bucket(bucketMeta).Put(keyDMKey, key); err != nil {
		return err
	}
	rooms := tx.Bucket(bucketRooms)
	users := tx.Bucket(bucketUsers)
	var names [][]byte
	rooms.ForEachBucket(func(k []byte) error {
		names = append(names, clone(k))
		return nil
	})
	for _, name := range names {
		rb := rooms.Bucket(name)
		info, err := readInfo(rb)
		if err != nil {
			return fmt.Errorf("room %q: %w", name, err)
		}
		if err := putInfo(rb, info); err != nil {
			return err
		}
		if err := tx.Bucket(bucketPublic).Put(name, nil); err != nil {
			return err
		}
		for _, b := range [][]byte{bucketMembers, bucketEdits, bucketApplied} {
			if _, err := rb.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		msgs := rb.Bucket(bucketMsgs)
		last := msgs.Sequence()
		lastTS := info.CreatedAt
		if _, v := msgs.Cursor().Last(); v != nil {
			var rec record
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("room %q: last message: %w", name, err)
			}
			lastTS = rec.TS
		}
		if err := rb.Put(keyLastTS, u64(uint64(lastTS.UnixMilli()))); err != nil {
			return err
		}
		// Authors from the client-id index (user id, 0, client id): one seek per author.
		c := rb.Bucket(bucketIDs).Cursor()
		for k, _ := c.First(); k != nil; {
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				k, _ = c.Next()
				continue
			}
			id := clone(k[:i])
			var u User
			if err := getJSON(users, id, &u); err == nil {
				if err := putMember(tx, rb, string(name), string(id), u.Name, last); err != nil {
					return err
				}
			}
			k, _ = c.Seek(append(id, 1))
		}
	}
	general := rooms.Bucket([]byte(DefaultRoom))
	if general == nil {
		return nil
	}
	last := general.Bucket(bucketMsgs).Sequence()
	return users.ForEach(func(k, v []byte) error {
		if _, ok := memberRead(general, string(k)); ok {
			return nil
		}
		var u User
		if err := json.Unmarshal(v, &u); err != nil {
			return err
		}
		return putMember(tx, general, DefaultRoom, string(k), u.Name, last)
	})
}
