package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"kaiwa/shared/proto"
)

// User is an account. PasswordHash is an encoded argon2id hash.
type User struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Admin        bool      `json:"admin"`
	PasswordHash string    `json:"password_hash"`
	CreatedAt    time.Time `json:"created_at"`
	// Disabled users cannot sign in or refresh; an administrator disables and enables them.
	Disabled bool `json:"disabled,omitempty"`
}

// ErrDisabled is returned when a session is started for a disabled user.
var ErrDisabled = errors.New("user disabled")

// CreateUser stores a new user named name (already normalised) and returns it with its id.
// The user is a member of general from then on, the read marker at its last seq.
// ErrUsernameTaken if the name is in use.
func (s *Store) CreateUser(name, passwordHash string, admin bool) (User, error) {
	u := User{Name: name, Admin: admin, PasswordHash: passwordHash, CreatedAt: s.now().UTC()}
	err := s.update(func(tx *bolt.Tx) error {
		names := tx.Bucket(bucketUsernames)
		if names.Get([]byte(name)) != nil {
			return ErrUsernameTaken
		}
		users := tx.Bucket(bucketUsers)
		seq, err := users.NextSequence()
		if err != nil {
			return err
		}
		u.ID = strconv.FormatUint(seq, 10)
		if err := names.Put([]byte(name), []byte(u.ID)); err != nil {
			return err
		}
		if err := putJSON(users, []byte(u.ID), u); err != nil {
			return err
		}
		if general := tx.Bucket(bucketRooms).Bucket([]byte(DefaultRoom)); general != nil {
			return putMember(tx, general, DefaultRoom, u.ID, u.Name, general.Bucket(bucketMsgs).Sequence())
		}
		return nil
	})
	if err != nil {
		return User{}, fmt.Errorf("store: create user: %w", err)
	}
	return u, nil
}

// UserByName returns the user with that (normalised) name, or ErrNotFound.
func (s *Store) UserByName(name string) (User, error) {
	var u User
	err := s.db.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketUsernames).Get([]byte(name))
		if id == nil {
			return ErrNotFound
		}
		return getJSON(tx.Bucket(bucketUsers), id, &u)
	})
	if err != nil {
		return User{}, fmt.Errorf("store: user %q: %w", name, err)
	}
	return u, nil
}

// UserByID returns the user with that id, or ErrNotFound.
func (s *Store) UserByID(id string) (User, error) {
	var u User
	err := s.db.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketUsers), []byte(id), &u)
	})
	if err != nil {
		return User{}, fmt.Errorf("store: user id %s: %w", id, err)
	}
	return u, nil
}

// UpdateUser applies fn to the stored user with that id and saves the result. fn must not
// change the ID or Name.
func (s *Store) UpdateUser(id string, fn func(*User)) (User, error) {
	var u User
	err := s.update(func(tx *bolt.Tx) error {
		users := tx.Bucket(bucketUsers)
		if err := getJSON(users, []byte(id), &u); err != nil {
			return err
		}
		fn(&u)
		return putJSON(users, []byte(id), u)
	})
	if err != nil {
		return User{}, fmt.Errorf("store: update user %s: %w", id, err)
	}
	return u, nil
}

// SetUserDisabled disables or enables the user with that id. Disabling revokes every live
// session of the user in the same transaction, so that no sign-in racing with it keeps a
// session; it returns the ids of the sessions revoked. ErrNotFound for an unknown user.
func (s *Store) SetUserDisabled(id string, disabled bool) ([]string, error) {
	var ids []string
	err := s.update(func(tx *bolt.Tx) error {
		users := tx.Bucket(bucketUsers)
		var u User
		if err := getJSON(users, []byte(id), &u); err != nil {
			return err
		}
		u.Disabled = disabled
		if err := putJSON(users, []byte(id), u); err != nil {
			return err
		}
		if !disabled {
			return nil
		}
		var err error
		ids, err = revokeUserSessions(tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: disable user %s: %w", id, err)
	}
	s.sessionsRevoked(ids)
	return ids, nil
}

// SwapUser stores new as the user with that id if the stored one is old, compared as stored
// (encoded), and reports whether it did: false if another change came first. ErrNotFound if
// there is no such user. new must keep old's ID and Name (the name index is not changed).
func (s *Store) SwapUser(id string, old, new User) (bool, error) {
	if new.ID != id || new.Name != old.Name {
		return false, fmt.Errorf("store: swap user %s: the id and name cannot change", id)
	}
	swapped, err := s.swap(bucketUsers, id, old, new)
	if err != nil {
		return false, fmt.Errorf("store: swap user %s: %w", id, err)
	}
	return swapped, nil
}

// UsersByPrefix lists up to limit users whose names start with prefix, by name.
func (s *Store) UsersByPrefix(prefix string, limit int) ([]proto.UserName, error) {
	users := []proto.UserName{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketUsernames).Cursor()
		for k, v := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)) && len(users) < limit; k, v = c.Next() {
			users = append(users, proto.UserName{ID: string(v), Name: string(k)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: users by prefix: %w", err)
	}
	return users, nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

// getJSON decodes the value at key, or returns ErrNotFound. Unmarshal copies, so the result
// does not refer to the transaction's memory.
func getJSON(b *bolt.Bucket, key []byte, v any) error {
	data := b.Get(key)
	if data == nil {
		return ErrNotFound
	}
	return json.Unmarshal(data, v)
}
