package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"kaiwa/shared/proto"
)

// roomInfo is what is stored of a room besides its messages. Kind is empty in a room stored
// before kinds existed until the schema 2 migration sets it. Creator is a user id, empty for
// rooms created by the server or before creators were kept.
type roomInfo struct {
	Name      string         `json:"name"`
	CreatedAt time.Time      `json:"created_at"`
	Kind      proto.RoomKind `json:"kind,omitempty"`
	Creator   string         `json:"creator,omitempty"`
}

// record is a message as stored. Its JSON is exactly the message frame's without "type", so a
// stored message can be sent on as it is; what the store keeps about a message besides (edits
// applied, counts) lives in the room's other buckets. Records stored before §7 lack the last
// three fields and are plain messages.
type record struct {
	Room     string    `json:"room"`
	Seq      uint64    `json:"seq"`
	ID       string    `json:"id"`
	From     string    `json:"from"`
	Text     string    `json:"text"`
	TS       time.Time `json:"ts"`
	Kind     string    `json:"kind,omitempty"`
	Target   uint64    `json:"target,omitempty"`
	Mentions []string  `json:"mentions,omitempty"`
}

func (r record) message() proto.Message {
	return proto.Message{Room: r.Room, Seq: r.Seq, ID: r.ID, From: r.From, Text: r.Text, TS: r.TS,
		Kind: r.Kind, Target: r.Target, Mentions: r.Mentions}
}

// applied is what later edits and deletions did to a plain message.
type applied struct {
	Text     string     `json:"text,omitempty"`
	Mentions []string   `json:"mentions,omitempty"`
	EditedAt *time.Time `json:"edited_at,omitempty"`
	Deleted  bool       `json:"deleted,omitempty"`
}

// CreateRoom creates a public room with a valid name and no creator. ErrRoomExists if it exists.
func (s *Store) CreateRoom(name string) (proto.Room, error) {
	return s.NewRoom("", name, proto.RoomPublic)
}

// NewRoom creates a public or private room with a valid name; a non-empty creatorID becomes its
// first member and its creator (who may remove members). It returns the room as the creator sees
// it. ErrRoomExists if a room of that name exists, whatever its kind.
func (s *Store) NewRoom(creatorID, name string, kind proto.RoomKind) (proto.Room, error) {
	if kind != proto.RoomPublic && kind != proto.RoomPrivate {
		return proto.Room{}, fmt.Errorf("store: create room %q: kind %q: %w", name, kind, ErrForbidden)
	}
	var room proto.Room
	var tell []string
	err := s.update(func(tx *bolt.Tx) error {
		info := roomInfo{Name: name, CreatedAt: s.now(), Kind: kind, Creator: creatorID}
		rb, err := createRoom(tx, info)
		if err != nil {
			return err
		}
		if creatorID != "" {
			u, err := userByID(tx, creatorID)
			if err != nil {
				return err
			}
			if err := putMember(tx, rb, name, creatorID, u.Name, 0); err != nil {
				return err
			}
			tell = concerned(rb, info, creatorID)
		}
		room, err = view(tx, rb, creatorID)
		return err
	})
	if err != nil {
		return proto.Room{}, fmt.Errorf("store: create room %q: %w", name, err)
	}
	s.membershipChanged(name, tell)
	return room, nil
}

// createRoom creates a room's buckets at the current schema, and lists it if public.
func createRoom(tx *bolt.Tx, info roomInfo) (*bolt.Bucket, error) {
	rooms := tx.Bucket(bucketRooms)
	if rooms.Bucket([]byte(info.Name)) != nil {
		return nil, ErrRoomExists
	}
	rb, err := rooms.CreateBucket([]byte(info.Name))
	if err != nil {
		return nil, err
	}
	for _, name := range [][]byte{bucketMsgs, bucketIDs, bucketMembers, bucketEdits, bucketApplied} {
		if _, err := rb.CreateBucket(name); err != nil {
			return nil, err
		}
	}
	info.CreatedAt = info.CreatedAt.UTC().Truncate(time.Millisecond)
	if err := putInfo(rb, info); err != nil {
		return nil, err
	}
	if err := rb.Put(keyLastTS, u64(uint64(info.CreatedAt.UnixMilli()))); err != nil {
		return nil, err
	}
	if info.Kind == proto.RoomPublic {
		if err := tx.Bucket(bucketPublic).Put([]byte(info.Name), nil); err != nil {
			return nil, err
		}
	}
	return rb, nil
}

// DeleteRoom deletes a room, its whole history and every membership of it in one transaction,
// or returns ErrNotFound.
func (s *Store) DeleteRoom(name string) error {
	err := s.update(func(tx *bolt.Tx) error {
		rooms := tx.Bucket(bucketRooms)
		if rooms.Bucket([]byte(name)) == nil {
			return ErrNotFound
		}
		if err := forgetRoom(tx, name); err != nil {
			return err
		}
		return rooms.DeleteBucket([]byte(name))
	})
	if err != nil {
		return fmt.Errorf("store: delete room %q: %w", name, err)
	}
	if o := s.observer(); o != nil {
		o.RoomDeleted(name)
	}
	return nil
}

// Rooms lists every room, by name, as nobody in particular sees it: without members and
// counts. It is for operators and tests; users' lists come from RoomsFor.
func (s *Store) Rooms() ([]proto.Room, error) {
	rooms := []proto.Room{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRooms).ForEachBucket(func(k []byte) error {
			room, err := readRoom(tx.Bucket(bucketRooms).Bucket(k))
			rooms = append(rooms, room)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: rooms: %w", err)
	}
	return rooms, nil
}

// Room returns one room as nobody in particular sees it (no members, no counts), or
// ErrNotFound. It authorizes nothing: it is for the server's own use, such as the room frame
// that tells a removed member that a private room is gone (Member false). Answers to a user
// come from RoomFor.
func (s *Store) Room(name string) (proto.Room, error) {
	var room proto.Room
	err := s.db.View(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bucketRooms).Bucket([]byte(name))
		if rb == nil {
			return ErrNotFound
		}
		var err error
		room, err = readRoom(rb)
		return err
	})
	if err != nil {
		return proto.Room{}, fmt.Errorf("store: room %q: %w", name, err)
	}
	return room, nil
}

// readInfo reads a room's info: from its binary head when it has one, which costs a tenth of
// decoding the JSON (listing a user's rooms reads hundreds), else from the JSON.
func readInfo(rb *bolt.Bucket) (roomInfo, error) {
	if info, ok := decodeHead(rb.Get(keyRoomHead)); ok {
		return info, nil
	}
	var info roomInfo
	if err := getJSON(rb, keyRoomInfo, &info); err != nil {
		return roomInfo{}, err
	}
	if info.Kind == "" {
		info.Kind = proto.RoomPublic
	}
	return info, nil
}

// putInfo stores a room's info, as JSON (what operators and older code read) and as its head.
func putInfo(rb *bolt.Bucket, info roomInfo) error {
	if err := putJSON(rb, keyRoomInfo, info); err != nil {
		return err
	}
	return rb.Put(keyRoomHead, encodeHead(info))
}

var kindCodes = []proto.RoomKind{proto.RoomPublic, proto.RoomPrivate, proto.RoomDM}

// encodeHead is the room's head: kind (1 byte, an index of kindCodes), created_at (8 bytes,
// unix ms), the creator's length (1 byte) and the creator, then the name.
func encodeHead(info roomInfo) []byte {
	h := make([]byte, 0, 10+len(info.Creator)+len(info.Name))
	h = append(h, byte(slices.Index(kindCodes, info.Kind)))
	h = binary.BigEndian.AppendUint64(h, uint64(info.CreatedAt.UnixMilli()))
	h = append(append(h, byte(len(info.Creator))), info.Creator...)
	return append(h, info.Name...)
}

func decodeHead(h []byte) (roomInfo, bool) {
	if len(h) < 10 || int(h[0]) >= len(kindCodes) || len(h) < 10+int(h[9]) {
		return roomInfo{}, false
	}
	n := 10 + int(h[9])
	return roomInfo{Kind: kindCodes[h[0]], CreatedAt: time.UnixMilli(int64(binary.BigEndian.Uint64(h[1:9]))).UTC(),
		Creator: string(h[10:n]), Name: string(h[n:])}, true
}

func readRoom(rb *bolt.Bucket) (proto.Room, error) {
	info, err := readInfo(rb)
	if err != nil {
		return proto.Room{}, err
	}
	return bareRoom(rb, info), nil
}

func bareRoom(rb *bolt.Bucket, info roomInfo) proto.Room {
	room := proto.Room{Name: info.Name, Kind: info.Kind, CreatedAt: info.CreatedAt,
		LastSeq: rb.Bucket(bucketMsgs).Sequence(), LastTS: info.CreatedAt}
	if v := rb.Get(keyLastTS); len(v) == 8 {
		room.LastTS = time.UnixMilli(int64(binary.BigEndian.Uint64(v))).UTC()
	}
	return room
}

// AppendRequest is one message to append: text from a user to a room under the client's id.
// Kind is "" for a plain message, or proto.KindEdit / proto.KindDelete of the message at Target
// (Text empty for a delete).
type AppendRequest struct {
	Room, UserID, From, ClientID, Text string
	Kind                               string
	Target                             uint64
}

// AppendResult is the outcome of one AppendRequest. Dup says the same user already sent that
// client id to that room: Msg is then the message stored the first time.
type AppendResult struct {
	Msg proto.Message
	Dup bool
	// Err is the request's own refusal; the batch's other requests go on. ErrNotFound: no such
	// room, or a private or dm room the sender is not a member of. ErrInvalidTarget: the target
	// is missing, is an edit or deletion, or is deleted. ErrNotAllowed: the sender may not edit
	// or delete the target.
	Err error
	// Read is the sender's read marker after the message (its seq): the server tells the
	// sender's other sockets.
	Read uint64
	// Joined says that the message made its sender a member of a public room.
	Joined bool
	// UserID is the sender's (the request's UserID), in every result.
	UserID string
}

// Append stores one plain message durably; see AppendBatch.
func (s *Store) Append(room, userID, from, clientID, text string) (proto.Message, bool, error) {
	res, err := s.AppendBatch([]AppendRequest{{Room: room, UserID: userID, From: from, ClientID: clientID, Text: text}})
	if err != nil {
		return proto.Message{}, false, err
	}
	return res[0].Msg, res[0].Dup, res[0].Err
}

// AppendBatch stores messages in order, in one transaction: they are on disk (fsync) before it
// returns, and each gets its room's next seq. A client id the same user already used in the same
// room stores nothing and returns the first message (safe retries). If the transaction fails,
// nothing is stored and the error is returned.
//
// Each request is authorized here, in the same transaction as the write: the sender must be
// able to read the room (CanRead); sending to a public room makes the sender a member. Storing
// a message moves the sender's read marker to it. The server computes the mentions (@name of an
// existing user); a plain message records, for each mentioned member other than the sender, a
// mention counted until that member's marker passes it. An edit or deletion records its effect
// on its target, which History applies.
func (s *Store) AppendBatch(reqs []AppendRequest) ([]AppendResult, error) {
	now := s.now().UTC().Truncate(time.Millisecond)
	res := make([]AppendResult, len(reqs))
	err := s.update(func(tx *bolt.Tx) error {
		infos := map[string]roomInfo{} // decoded once per room and batch
		for i, req := range reqs {
			var err error
			res[i], err = appendOne(tx, req, now, infos)
			if err != nil {
				return err
			}
			res[i].UserID = req.UserID
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: append: %w", err)
	}
	if o := s.observer(); o != nil {
		o.Appended(res)
	}
	return res, nil
}

// appendOne stores one request. Refusals go in the result; an error fails the transaction.
func appendOne(tx *bolt.Tx, req AppendRequest, now time.Time, infos map[string]roomInfo) (AppendResult, error) {
	rb := tx.Bucket(bucketRooms).Bucket([]byte(req.Room))
	if rb == nil {
		return AppendResult{Err: ErrNotFound}, nil
	}
	info, ok := infos[req.Room]
	if !ok {
		var err error
		if info, err = readInfo(rb); err != nil {
			return AppendResult{}, err
		}
		infos[req.Room] = info
	}
	_, member := memberRead(rb, req.UserID)
	if !member && info.Kind != proto.RoomPublic {
		return AppendResult{Err: ErrNotFound}, nil
	}
	msgs, ids := rb.Bucket(bucketMsgs), rb.Bucket(bucketIDs)
	// A fresh key each time: bbolt keeps Put's slices until the commit.
	idKey := make([]byte, 0, len(req.UserID)+1+len(req.ClientID))
	idKey = append(append(append(idKey, req.UserID...), 0), req.ClientID...)
	if seq := ids.Get(idKey); seq != nil {
		var rec record
		if err := json.Unmarshal(msgs.Get(seq), &rec); err != nil {
			return AppendResult{}, err
		}
		return AppendResult{Msg: rec.message(), Dup: true}, nil
	}
	var target *record
	var targetApplied applied
	var err error
	switch req.Kind {
	case "":
	case proto.KindEdit, proto.KindDelete:
		target, targetApplied, err = readTarget(rb, req.Target)
		if err != nil {
			return AppendResult{Err: err}, nil
		}
		if ok, err := mayChange(tx, info, target, req); err != nil {
			return AppendResult{}, err
		} else if !ok {
			return AppendResult{Err: ErrNotAllowed}, nil
		}
	default:
		return AppendResult{Err: fmt.Errorf("message kind %q: %w", req.Kind, ErrInvalidTarget)}, nil
	}
	seq, err := msgs.NextSequence()
	if err != nil {
		return AppendResult{}, err
	}
	mentions, mentionIDs := mentionsOf(tx, req.Text)
	rec := record{Room: req.Room, Seq: seq, ID: req.ClientID, From: req.From, Text: req.Text, TS: now,
		Kind: req.Kind, Target: req.Target, Mentions: mentions}
	key := u64(seq)
	if err := ids.Put(idKey, key); err != nil {
		return AppendResult{}, err
	}
	if err := putJSON(msgs, key, rec); err != nil {
		return AppendResult{}, err
	}
	if err := rb.Put(keyLastTS, u64(uint64(now.UnixMilli()))); err != nil {
		return AppendResult{}, err
	}
	if target != nil {
		// The running count of edits and deletions lets unread counts skip them (see plainAt).
		edits := rb.Bucket(bucketEdits)
		var n uint64 = 1
		if _, v := edits.Cursor().Last(); len(v) == 8 {
			n += binary.BigEndian.Uint64(v)
		}
		if err := edits.Put(key, u64(n)); err != nil {
			return AppendResult{}, err
		}
		if req.Kind == proto.KindEdit {
			at := now
			targetApplied = applied{Text: req.Text, Mentions: mentions, EditedAt: &at}
		} else {
			targetApplied = applied{Deleted: true}
		}
		if err := putJSON(rb.Bucket(bucketApplied), u64(target.Seq), targetApplied); err != nil {
			return AppendResult{}, err
		}
	}
	if member {
		err = rb.Bucket(bucketMembers).Put([]byte(req.UserID), append(u64(seq), req.From...))
	} else {
		err = putMember(tx, rb, req.Room, req.UserID, req.From, seq)
	}
	if err != nil {
		return AppendResult{}, err
	}
	if target == nil {
		for _, id := range mentionIDs {
			if id == req.UserID {
				continue
			}
			if _, ok := memberRead(rb, id); ok {
				if err := tx.Bucket(bucketMentions).Put(mentionKey(id, req.Room, seq), nil); err != nil {
					return AppendResult{}, err
				}
			}
		}
	}
	return AppendResult{Msg: rec.message(), Read: seq, Joined: !member}, nil
}

// readTarget returns the plain, undeleted message at seq and what was applied to it, or
// ErrInvalidTarget.
func readTarget(rb *bolt.Bucket, seq uint64) (*record, applied, error) {
	v := rb.Bucket(bucketMsgs).Get(u64(seq))
	if v == nil {
		return nil, applied{}, ErrInvalidTarget
	}
	var rec record
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, applied{}, err
	}
	var ap applied
	if v := rb.Bucket(bucketApplied).Get(u64(seq)); v != nil {
		if err := json.Unmarshal(v, &ap); err != nil {
			return nil, applied{}, err
		}
	}
	if rec.Kind != "" || ap.Deleted {
		return nil, applied{}, ErrInvalidTarget
	}
	rec.Seq = seq
	return &rec, ap, nil
}

// mayChange says whether req may edit or delete target: only its author edits; its author, the
// creator of a private room or an administrator deletes.
func mayChange(tx *bolt.Tx, info roomInfo, target *record, req AppendRequest) (bool, error) {
	if target.From == req.From {
		return true, nil
	}
	if req.Kind == proto.KindEdit {
		return false, nil
	}
	if info.Kind == proto.RoomPrivate && info.Creator != "" && info.Creator == req.UserID {
		return true, nil
	}
	return isAdmin(tx, req.UserID)
}

// mentionsOf returns the sorted unique names of the existing users text mentions, and their ids
// in the same order.
func mentionsOf(tx *bolt.Tx, text string) (names, ids []string) {
	cands := proto.MentionNames(text)
	if len(cands) == 0 {
		return nil, nil
	}
	slices.Sort(cands)
	usernames := tx.Bucket(bucketUsernames)
	for _, name := range slices.Compact(cands) {
		if id := usernames.Get([]byte(name)); id != nil {
			names, ids = append(names, name), append(ids, string(id))
		}
	}
	return names, ids
}

// Page reads up to limit messages of a room as they were sent (edits and deletions not applied
// to their targets), ascending by seq, and whether more exist in the paging direction. With
// after set: those just above *after. Otherwise with before set: those just below *before.
// Otherwise the newest. ErrNotFound if the room does not exist. It authorizes nothing: answers
// to a user come from History.
func (s *Store) Page(room string, before, after *uint64, limit int) ([]proto.Message, bool, error) {
	var msgs []proto.Message
	var more bool
	err := s.db.View(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bucketRooms).Bucket([]byte(room))
		if rb == nil {
			return ErrNotFound
		}
		var err error
		msgs, more, err = page(rb, before, after, limit, false)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: page of %q: %w", room, err)
	}
	return msgs, more, nil
}

// History is Page for a user who can read the room (else ErrNotFound, as for a room that does
// not exist), with edits and deletions applied to their targets: an edited message carries its
// latest text and EditedAt, a deleted one Deleted and no text. Edits and deletions themselves
// are listed too, at their own seqs.
func (s *Store) History(userID, room string, before, after *uint64, limit int) ([]proto.Message, bool, error) {
	var msgs []proto.Message
	var more bool
	err := s.db.View(func(tx *bolt.Tx) error {
		rb, _, err := readable(tx, userID, room)
		if err != nil {
			return err
		}
		msgs, more, err = page(rb, before, after, limit, true)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: history of %q: %w", room, err)
	}
	return msgs, more, nil
}

func page(rb *bolt.Bucket, before, after *uint64, limit int, apply bool) ([]proto.Message, bool, error) {
	msgs := make([]proto.Message, 0, limit)
	c := rb.Bucket(bucketMsgs).Cursor()
	var k, v []byte
	if after != nil {
		// Seek to after itself and step over it: after+1 would wrap at the largest seq.
		k, v = c.Seek(u64(*after))
		if k != nil && binary.BigEndian.Uint64(k) == *after {
			k, v = c.Next()
		}
		for ; k != nil && len(msgs) < limit; k, v = c.Next() {
			if err := appendMessage(&msgs, v); err != nil {
				return nil, false, err
			}
		}
		return msgs, k != nil, applyAll(rb, msgs, apply)
	}
	if before != nil {
		k, v = c.Seek(u64(*before))
		if k == nil {
			k, v = c.Last()
		}
		for k != nil && binary.BigEndian.Uint64(k) >= *before {
			k, v = c.Prev()
		}
	} else {
		k, v = c.Last()
	}
	for ; k != nil && len(msgs) < limit; k, v = c.Prev() {
		if err := appendMessage(&msgs, v); err != nil {
			return nil, false, err
		}
	}
	// Collected newest first: put them in ascending order.
	slices.Reverse(msgs)
	return msgs, k != nil, applyAll(rb, msgs, apply)
}

// applyAll applies to msgs what edits and deletions did to them.
func applyAll(rb *bolt.Bucket, msgs []proto.Message, apply bool) error {
	if !apply {
		return nil
	}
	ab := rb.Bucket(bucketApplied)
	for i := range msgs {
		v := ab.Get(u64(msgs[i].Seq))
		if v == nil {
			continue
		}
		var ap applied
		if err := json.Unmarshal(v, &ap); err != nil {
			return err
		}
		switch {
		case ap.Deleted:
			msgs[i].Text, msgs[i].Mentions, msgs[i].Deleted, msgs[i].EditedAt = "", nil, true, nil
		case ap.EditedAt != nil:
			msgs[i].Text, msgs[i].Mentions, msgs[i].EditedAt = ap.Text, ap.Mentions, ap.EditedAt
		}
	}
	return nil
}

func appendMessage(msgs *[]proto.Message, v []byte) error {
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return err
	}
	*msgs = append(*msgs, r.message())
	return nil
}

// StoredMessage is one message as it is stored: its seq, and its JSON encoding, which is the
// message frame without its type (see record).
type StoredMessage struct {
	Seq  uint64
	JSON []byte
}

// After reads up to limit messages of a room just above seq after, ascending, as they are
// stored: cheaper than Page for a caller that sends the bytes on without looking into them.
// It stops early once the messages read hold maxBytes, so that what a caller holds is bounded
// whatever the messages' size; it always reads one message if there is one. ErrNotFound if the
// room does not exist.
func (s *Store) After(room string, after uint64, limit, maxBytes int) ([]StoredMessage, error) {
	msgs := make([]StoredMessage, 0, limit)
	err := s.db.View(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bucketRooms).Bucket([]byte(room))
		if rb == nil {
			return ErrNotFound
		}
		c := rb.Bucket(bucketMsgs).Cursor()
		// Seek to after itself and step over it: after+1 would wrap at the largest seq.
		k, v := c.Seek(u64(after))
		if k != nil && binary.BigEndian.Uint64(k) == after {
			k, v = c.Next()
		}
		for size := 0; k != nil && len(msgs) < limit && size < maxBytes; k, v = c.Next() {
			msgs = append(msgs, StoredMessage{Seq: binary.BigEndian.Uint64(k), JSON: clone(v)})
			size += len(v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: messages of %q: %w", room, err)
	}
	return msgs, nil
}
