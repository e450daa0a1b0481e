package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"kaiwa/shared/proto"
)

// roomInfo is what is stored of a room besides its messages.
type roomInfo struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// CreateRoom creates a room with a valid name. ErrRoomExists if it exists.
func (s *Store) CreateRoom(name string) (proto.Room, error) {
	var room proto.Room
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		room, err = createRoom(tx, name, time.Now())
		return err
	})
	if err != nil {
		return proto.Room{}, fmt.Errorf("store: create room %q: %w", name, err)
	}
	return room, nil
}

func createRoom(tx *bolt.Tx, name string, now time.Time) (proto.Room, error) {
	rooms := tx.Bucket(bucketRooms)
	if rooms.Bucket([]byte(name)) != nil {
		return proto.Room{}, ErrRoomExists
	}
	rb, err := rooms.CreateBucket([]byte(name))
	if err != nil {
		return proto.Room{}, err
	}
	if _, err := rb.CreateBucket(bucketMsgs); err != nil {
		return proto.Room{}, err
	}
	if _, err := rb.CreateBucket(bucketIDs); err != nil {
		return proto.Room{}, err
	}
	info := roomInfo{Name: name, CreatedAt: now.UTC().Truncate(time.Millisecond)}
	if err := putJSON(rb, keyRoomInfo, info); err != nil {
		return proto.Room{}, err
	}
	return proto.Room{Name: info.Name, CreatedAt: info.CreatedAt}, nil
}

// DeleteRoom deletes a room and its whole history in one transaction, or returns ErrNotFound.
func (s *Store) DeleteRoom(name string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		rooms := tx.Bucket(bucketRooms)
		if rooms.Bucket([]byte(name)) == nil {
			return ErrNotFound
		}
		return rooms.DeleteBucket([]byte(name))
	})
	if err != nil {
		return fmt.Errorf("store: delete room %q: %w", name, err)
	}
	return nil
}

// Rooms lists every room, by name.
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

// Room returns one room, or ErrNotFound.
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

func readRoom(rb *bolt.Bucket) (proto.Room, error) {
	var info roomInfo
	if err := getJSON(rb, keyRoomInfo, &info); err != nil {
		return proto.Room{}, err
	}
	return proto.Room{Name: info.Name, CreatedAt: info.CreatedAt, LastSeq: rb.Bucket(bucketMsgs).Sequence()}, nil
}

// AppendRequest is one message to append: text from a user to a room under the client's id.
type AppendRequest struct {
	Room, UserID, From, ClientID, Text string
}

// AppendResult is the outcome of one AppendRequest. Dup says the same user already sent that
// client id to that room: Msg is then the message stored the first time.
type AppendResult struct {
	Msg proto.Message
	Dup bool
	Err error // ErrNotFound for a room that does not exist; the batch's other requests go on
}

// Append stores one message durably; see AppendBatch.
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
func (s *Store) AppendBatch(reqs []AppendRequest) ([]AppendResult, error) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	res := make([]AppendResult, len(reqs))
	err := s.db.Update(func(tx *bolt.Tx) error {
		rooms := tx.Bucket(bucketRooms)
		for i, req := range reqs {
			rb := rooms.Bucket([]byte(req.Room))
			if rb == nil {
				res[i].Err = ErrNotFound
				continue
			}
			msgs, ids := rb.Bucket(bucketMsgs), rb.Bucket(bucketIDs)
			// A fresh key each time: bbolt keeps Put's slices until the commit.
			idKey := make([]byte, 0, len(req.UserID)+1+len(req.ClientID))
			idKey = append(append(append(idKey, req.UserID...), 0), req.ClientID...)
			if seq := ids.Get(idKey); seq != nil {
				res[i].Dup = true
				if err := json.Unmarshal(msgs.Get(seq), &res[i].Msg); err != nil {
					return err
				}
				continue
			}
			seq, err := msgs.NextSequence()
			if err != nil {
				return err
			}
			res[i].Msg = proto.Message{Room: req.Room, Seq: seq, ID: req.ClientID, From: req.From, Text: req.Text, TS: now}
			key := u64(seq)
			if err := ids.Put(idKey, key); err != nil {
				return err
			}
			if err := putJSON(msgs, key, res[i].Msg); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: append: %w", err)
	}
	return res, nil
}

// Page reads up to limit messages of a room, ascending by seq, and whether more exist in the
// paging direction. With after set: those just above *after. Otherwise with before set: those
// just below *before. Otherwise the newest. ErrNotFound if the room does not exist.
func (s *Store) Page(room string, before, after *uint64, limit int) ([]proto.Message, bool, error) {
	msgs := make([]proto.Message, 0, limit)
	var more bool
	err := s.db.View(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bucketRooms).Bucket([]byte(room))
		if rb == nil {
			return ErrNotFound
		}
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
					return err
				}
			}
			more = k != nil
			return nil
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
				return err
			}
		}
		more = k != nil
		// Collected newest first: put them in ascending order.
		for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
			msgs[i], msgs[j] = msgs[j], msgs[i]
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: page of %q: %w", room, err)
	}
	return msgs, more, nil
}

// StoredMessage is one message as it is stored: its seq, and its JSON encoding, which is a
// proto.Message without its type.
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

func appendMessage(msgs *[]proto.Message, v []byte) error {
	var m proto.Message
	if err := json.Unmarshal(v, &m); err != nil {
		return err
	}
	*msgs = append(*msgs, m)
	return nil
}
