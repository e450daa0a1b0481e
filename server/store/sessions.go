package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Session is a refresh session: one sign-in on one device. Its refresh tokens are kept only as
// hashes. Current holds the hashes that may be used now; Rotated those already traded for a
// successor, with when, so that reuse can be told from a race between tabs; Last the token
// rotated away most recently, so that a lost answer can be told from reuse.
type Session struct {
	ID        string        `json:"id"`
	UserID    string        `json:"user_id"`
	CreatedAt time.Time     `json:"created_at"`
	ExpiresAt time.Time     `json:"expires_at"` // sliding: moved on each refresh
	Revoked   bool          `json:"revoked,omitempty"`
	Current   [][]byte      `json:"current"`
	Rotated   []RotatedKey  `json:"rotated,omitempty"`
	Last      *LastRotation `json:"last,omitempty"` // nil in sessions stored before it existed
}

// RotatedKey is the hash of a refresh token that was rotated away at At. A voided token was
// handed out but never used, and replaced because its predecessor came back: it may never be
// used.
type RotatedKey struct {
	Hash   []byte    `json:"hash"`
	At     time.Time `json:"at"`
	Voided bool      `json:"voided,omitempty"`
}

// LastRotation is the refresh token rotated away most recently (Hash, at At) and the tokens it
// was traded for (Successors). Once a successor is used, it becomes the last rotation itself.
type LastRotation struct {
	Hash       []byte    `json:"hash"`
	At         time.Time `json:"at"`
	Successors [][]byte  `json:"successors"`
}

// CreateSession stores a new session; ErrDisabled if its user is disabled. Concurrent session
// writes share commits (db.Batch): a burst of sign-ins or refreshes costs a few fsyncs, not one
// each.
func (s *Store) CreateSession(sess Session) error {
	var disabled bool
	// In a batch this may run again after a batch-mate failed: a disabled user does not fail
	// the transaction, so the others' sessions are not written twice.
	err := s.batch(func(tx *bolt.Tx) error {
		var u User
		err := getJSON(tx.Bucket(bucketUsers), []byte(sess.UserID), &u)
		if disabled = err == nil && u.Disabled; disabled {
			return nil
		}
		return putJSON(tx.Bucket(bucketSessions), []byte(sess.ID), sess)
	})
	if err == nil && disabled {
		err = ErrDisabled
	}
	if err != nil {
		return fmt.Errorf("store: create session: %w", err)
	}
	return nil
}

// Session returns the session with that id, or ErrNotFound.
func (s *Store) Session(id string) (Session, error) {
	var sess Session
	err := s.db.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketSessions), []byte(id), &sess)
	})
	if err != nil {
		return Session{}, fmt.Errorf("store: session: %w", err)
	}
	return sess, nil
}

// UpdateSession applies fn to the stored session with that id inside one write transaction and
// saves the result, also when fn fails; a session it revokes is told to the Observer. fn's error is returned as it is, so callers can branch on
// their own sentinels; the session as fn left it is returned in every case.
func (s *Store) UpdateSession(id string, fn func(*Session) error) (Session, error) {
	var sess Session
	var fnErr error
	var found, revoked bool
	// In a batch this may run again after a batch-mate failed: it starts from the stored
	// session each time. Neither a missing session nor fn's error fails the transaction, so a
	// bogus token cannot make its batch-mates run twice, and a revocation is kept.
	err := s.batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		sess, fnErr, found, revoked = Session{}, nil, false, false // Unmarshal into a used struct keeps omitted fields
		data := b.Get([]byte(id))
		if data == nil {
			return nil
		}
		found = true
		if err := json.Unmarshal(data, &sess); err != nil {
			return err
		}
		was := sess.Revoked
		fnErr = fn(&sess)
		revoked = !was && sess.Revoked
		return putJSON(b, []byte(id), sess)
	})
	if err != nil {
		return sess, fmt.Errorf("store: update session: %w", err)
	}
	if !found {
		return sess, fmt.Errorf("store: update session: %w", ErrNotFound)
	}
	if revoked {
		s.sessionsRevoked([]string{id})
	}
	return sess, fnErr
}

// RevokeUserSessions marks every live session of the user revoked and returns their ids.
func (s *Store) RevokeUserSessions(userID string) ([]string, error) {
	var ids []string
	err := s.update(func(tx *bolt.Tx) error {
		var err error
		ids, err = revokeUserSessions(tx, userID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: revoke sessions: %w", err)
	}
	s.sessionsRevoked(ids)
	return ids, nil
}

// SwapSession stores new as the session with that id if the stored one is old, compared as
// stored (encoded), and reports whether it did: false if another change came first.
// ErrNotFound if there is no such session. A swap that revokes the session is told to the
// Observer.
func (s *Store) SwapSession(id string, old, new Session) (bool, error) {
	swapped, err := s.swap(bucketSessions, id, old, new)
	if err != nil {
		return false, fmt.Errorf("store: swap session: %w", err)
	}
	if swapped && !old.Revoked && new.Revoked {
		s.sessionsRevoked([]string{id})
	}
	return swapped, nil
}

// swap is SwapSession and SwapUser: compare the value at key with old's encoding, then store
// new's.
func (s *Store) swap(bucket []byte, key string, old, new any) (bool, error) {
	want, err := json.Marshal(old)
	if err != nil {
		return false, err
	}
	var swapped bool
	err = s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		v := b.Get([]byte(key))
		if v == nil {
			return ErrNotFound
		}
		if swapped = bytes.Equal(v, want); !swapped {
			return nil
		}
		return putJSON(b, []byte(key), new)
	})
	return swapped, err
}

// sessionsRevoked tells the Observer of sessions revoked, if any.
func (s *Store) sessionsRevoked(ids []string) {
	if o := s.observer(); o != nil && len(ids) > 0 {
		o.SessionsRevoked(ids)
	}
}

func revokeUserSessions(tx *bolt.Tx, userID string) ([]string, error) {
	b := tx.Bucket(bucketSessions)
	var revoke []Session
	err := b.ForEach(func(k, v []byte) error {
		var sess Session
		if err := getJSON(b, k, &sess); err != nil {
			return err
		}
		if sess.UserID == userID && !sess.Revoked {
			revoke = append(revoke, sess)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, sess := range revoke {
		sess.Revoked, sess.Current, sess.Rotated, sess.Last = true, nil, nil, nil
		if err := putJSON(b, []byte(sess.ID), sess); err != nil {
			return nil, err
		}
		ids = append(ids, sess.ID)
	}
	return ids, nil
}
