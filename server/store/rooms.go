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

// Append stores a message from the user in the room, durably (fsync) before it returns, and
// gives it the room's next seq. Concurrent appends share commits. A client id the same user
// already used in the same room returns the stored message and dup = true, storing nothing.
// ErrNotFound if the room does not exist.
func (s *Store) Append(room, userID, from, clientID, text string) (msg proto.Message, dup bool, err error) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	idKey := make([]byte, 0, len(userID)+1+len(clientID))
	idKey = append(append(append(idKey, userID...), 0), clientID...)
	// Batch may run fn more than once (after a failed batch-mate): each run starts over.
	err = s.db.Batch(func(tx *bolt.Tx) error {
		dup = false
		rb := tx.Bucket(bucketRooms).Bucket([]byte(room))
		if rb == nil {
			return ErrNotFound
		}
		msgs, ids := rb.Bucket(bucketMsgs), rb.Bucket(bucketIDs)
		if seq := ids.Get(idKey); seq != nil {
			dup = true
			return json.Unmarshal(msgs.Get(seq), &msg)
		}
		seq, err := msgs.NextSequence()
		if err != nil {
			return err
		}
		msg = proto.Message{Room: room, Seq: seq, ID: clientID, From: from, Text: text, TS: now}
		key := u64(seq)
		if err := ids.Put(idKey, key); err != nil {
			return err
		}
		return putJSON(msgs, key, msg)
	})
	if err != nil {
		return proto.Message{}, false, fmt.Errorf("store: append to %q: %w", room, err)
	}
	return msg, dup, nil
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

func appendMessage(msgs *[]proto.Message, v []byte) error {
	var m proto.Message
	if err := json.Unmarshal(v, &m); err != nil {
		return err
	}
	*msgs = append(*msgs, m)
	return nil
}
