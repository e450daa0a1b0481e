package store

// Stand-ins for the log-applying helpers, so the cluster engine builds before they land; they
// are replaced by the real ones (a view whose mutations use the op's time and record the applied
// seq in their own transaction).

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	keyApplied     = []byte("applied_seq")
	keyInitialized = []byte("cluster_initialized")
)

// Observer is told of stored changes (stand-in: never called).
type Observer interface {
	Appended(results []AppendResult)
	ReadMoved(userID, room string, seq uint64)
	MembershipChanged(room string, userIDs []string)
	RoomDeleted(room string)
	SessionsRevoked(ids []string)
}

// SetObserver sets the observer (stand-in: ignored).
func (s *Store) SetObserver(o Observer) {}

// At returns the store whose mutations are those of log position seq (stand-in: records seq
// first, in a transaction of its own, and ignores now).
func (s *Store) At(now time.Time, seq uint64) *Store {
	if seq > 0 {
		s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyApplied, u64(seq)) })
	}
	return s
}

// AppliedSeq returns the last log position applied, 0 when none.
func (s *Store) AppliedSeq() (uint64, error) {
	var seq uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyApplied); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return seq, err
}

// OpenEmpty opens a database not yet initialised by the log.
func OpenEmpty(path string) (*Store, error) {
	s, err := Open(path)
	if err != nil {
		return nil, err
	}
	s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta).Get(keyInitialized) == nil {
			s.key = nil
		}
		return nil
	})
	return s, nil
}

// Initialize sets the signing key once.
func (s *Store) Initialize(key []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta.Get(keyInitialized) != nil {
			return nil
		}
		s.key = clone(key)
		if err := meta.Put(keyInitialized, []byte{1}); err != nil {
			return err
		}
		return meta.Put(keySigningKey, key)
	})
}

// SetSigningKey replaces the signing key.
func (s *Store) SetSigningKey(key []byte) error {
	err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySigningKey, key) })
	if err == nil {
		s.key = clone(key)
	}
	return err
}

// SwapSession stores new if the stored session is old.
func (s *Store) SwapSession(id string, old, new Session) (bool, error) {
	return swap(s, bucketSessions, id, old, new)
}

// SwapUser stores new if the stored user is old.
func (s *Store) SwapUser(id string, old, new User) (bool, error) {
	return swap(s, bucketUsers, id, old, new)
}

func swap(s *Store, bucket []byte, id string, old, new any) (bool, error) {
	o, err := json.Marshal(old)
	if err != nil {
		return false, err
	}
	var swapped bool
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		cur := b.Get([]byte(id))
		if cur == nil {
			return ErrNotFound
		}
		if !bytes.Equal(cur, o) {
			return nil
		}
		swapped = true
		return putJSON(b, []byte(id), new)
	})
	if err != nil {
		return false, fmt.Errorf("store: swap %s: %w", id, err)
	}
	return swapped, nil
}
