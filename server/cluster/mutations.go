package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

// Every mutating method of *store.Store is overridden here by the proposal of an operation;
// the store's documentation of each holds, for the whole cluster.

// errShortKey refuses a signing key before it reaches the log, where every node would fail on
// it and stop.
var errShortKey = errors.New("cluster: signing key shorter than 32 bytes")

// Initialize proposes the init operation with key; it changes nothing in an initialised cluster.
func (e *Engine) Initialize(key []byte) error {
	if len(key) < 32 {
		return errShortKey
	}
	_, err := e.propose(kindInit, keyArgs{Key: key})
	return err
}

// SetSigningKey replaces the cluster's signing key.
func (e *Engine) SetSigningKey(key []byte) error {
	if len(key) < 32 {
		return errShortKey
	}
	_, err := e.propose(kindSetSigningKey, keyArgs{Key: key})
	return err
}

// RotateSigningKey replaces the cluster's signing key with a new random one and returns it.
func (e *Engine) RotateSigningKey() ([]byte, error) {
	key := newKey()
	if err := e.SetSigningKey(key); err != nil {
		return nil, err
	}
	return append([]byte(nil), key...), nil
}

// CreateUser: see store.Store.CreateUser.
func (e *Engine) CreateUser(name, passwordHash string, admin bool) (store.User, error) {
	return call[store.User](e, kindCreateUser, createUserArgs{Name: name, Hash: passwordHash, Admin: admin})
}

// SwapUser: see store.Store.SwapUser.
func (e *Engine) SwapUser(id string, old, new store.User) (bool, error) {
	return call[bool](e, kindSwapUser, swapUserArgs{ID: id, Old: old, New: new})
}

// UpdateUser applies fn to a copy of the user as this node has it and swaps it in; when another
// node changed the user first, it does so again on the new value.
func (e *Engine) UpdateUser(id string, fn func(*store.User)) (store.User, error) {
	for range swapAttempts {
		old, err := e.UserByID(id)
		if err != nil {
			return store.User{}, err
		}
		var u store.User
		if err := deepCopy(&u, old); err != nil {
			return store.User{}, err
		}
		fn(&u)
		ok, err := e.SwapUser(id, old, u)
		if err != nil {
			return store.User{}, err
		}
		if ok {
			return u, nil
		}
	}
	return store.User{}, fmt.Errorf("%w: user %s", ErrContended, id)
}

// SetUserDisabled: see store.Store.SetUserDisabled.
func (e *Engine) SetUserDisabled(id string, disabled bool) ([]string, error) {
	return call[[]string](e, kindSetUserDisabled, disableArgs{ID: id, Disabled: disabled})
}

// CreateSession: see store.Store.CreateSession.
func (e *Engine) CreateSession(sess store.Session) error {
	_, err := e.propose(kindCreateSession, sessionArgs{Session: sess})
	return err
}

// SwapSession: see store.Store.SwapSession.
func (e *Engine) SwapSession(id string, old, new store.Session) (bool, error) {
	return call[bool](e, kindSwapSession, swapSessionArgs{ID: id, Old: old, New: new})
}

// UpdateSession applies fn to a copy of the session as this node has it and swaps it in, so that
// one compare-and-swap in the log decides each refresh rotation; when another node changed the
// session first, fn runs again on the new value (fn may run more than once, as with the store).
// The session is saved also when fn fails; fn's error is returned as it is.
func (e *Engine) UpdateSession(id string, fn func(*store.Session) error) (store.Session, error) {
	for range swapAttempts {
		old, err := e.Session(id)
		if err != nil {
			return store.Session{}, err
		}
		var sess store.Session
		if err := deepCopy(&sess, old); err != nil {
			return store.Session{}, err
		}
		fnErr := fn(&sess)
		ok, err := e.SwapSession(id, old, sess)
		if err != nil {
			return sess, err
		}
		if ok {
			return sess, fnErr
		}
	}
	return store.Session{}, fmt.Errorf("%w: session", ErrContended)
}

// RevokeUserSessions: see store.Store.RevokeUserSessions.
func (e *Engine) RevokeUserSessions(userID string) ([]string, error) {
	return call[[]string](e, kindRevokeSessions, userArgs{UserID: userID})
}

// CreateRoom: see store.Store.CreateRoom.
func (e *Engine) CreateRoom(name string) (proto.Room, error) {
	return e.NewRoom("", name, proto.RoomPublic)
}

// NewRoom: see store.Store.NewRoom.
func (e *Engine) NewRoom(creatorID, name string, kind proto.RoomKind) (proto.Room, error) {
	return call[proto.Room](e, kindNewRoom, newRoomArgs{Creator: creatorID, Name: name, Kind: kind})
}

// DeleteRoom: see store.Store.DeleteRoom.
func (e *Engine) DeleteRoom(name string) error {
	_, err := e.propose(kindDeleteRoom, roomArgs{Name: name})
	return err
}

// Append: see store.Store.Append.
func (e *Engine) Append(room, userID, from, clientID, text string) (proto.Message, bool, error) {
	res, err := e.AppendBatch([]store.AppendRequest{{Room: room, UserID: userID, From: from, ClientID: clientID, Text: text}})
	if err != nil {
		return proto.Message{}, false, err
	}
	return res[0].Msg, res[0].Dup, res[0].Err
}

// AppendBatch: see store.Store.AppendBatch. A batch too large for one operation is split into
// several, each stored in one transaction; the results are in the requests' order.
func (e *Engine) AppendBatch(reqs []store.AppendRequest) ([]store.AppendResult, error) {
	raw, err := json.Marshal(appendArgs{Reqs: reqs})
	if err != nil {
		return nil, fmt.Errorf("cluster: encode append: %w", err)
	}
	if len(raw) > maxArgsBytes && len(reqs) > 1 {
		half := len(reqs) / 2
		first, err := e.AppendBatch(reqs[:half])
		if err != nil {
			return nil, err
		}
		rest, err := e.AppendBatch(reqs[half:])
		if err != nil {
			return nil, err
		}
		return append(first, rest...), nil
	}
	return call[[]store.AppendResult](e, kindAppend, json.RawMessage(raw))
}

// AddMember: see store.Store.AddMember.
func (e *Engine) AddMember(byID, room, userID string) (bool, error) {
	return call[bool](e, kindAddMember, memberArgs{By: byID, Room: room, User: userID})
}

// RemoveMember: see store.Store.RemoveMember.
func (e *Engine) RemoveMember(byID, room, userID string) (bool, error) {
	return call[bool](e, kindRemoveMember, memberArgs{By: byID, Room: room, User: userID})
}

// SetRead: see store.Store.SetRead.
func (e *Engine) SetRead(userID, room string, seq uint64) (uint64, error) {
	return call[uint64](e, kindSetRead, setReadArgs{User: userID, Room: room, Seq: seq})
}

// DM: see store.Store.DM.
func (e *Engine) DM(userID, otherID string) (proto.Room, bool, error) {
	r, err := call[dmResult](e, kindDM, dmArgs{User: userID, Other: otherID})
	return r.Room, r.Created, err
}

// PutCert: see store.Store.PutCert.
func (e *Engine) PutCert(key string, value []byte) error {
	_, err := e.propose(kindPutCert, certArgs{Key: key, Value: value})
	return err
}

// DeleteCert: see store.Store.DeleteCert.
func (e *Engine) DeleteCert(key string) error {
	_, err := e.propose(kindDeleteCert, certArgs{Key: key})
	return err
}

// Reads come from the cache. Those that can find nothing (a session, a user, a room, a room's
// history) may have asked a cache behind the log (the user was created on another node a moment
// ago): they wait for the cache to apply everything stored so far, and read again once.

// Session: see store.Store.Session.
func (e *Engine) Session(id string) (store.Session, error) {
	return again(e, func() (store.Session, error) { return e.Store.Session(id) })
}

// UserByName: see store.Store.UserByName.
func (e *Engine) UserByName(name string) (store.User, error) {
	return again(e, func() (store.User, error) { return e.Store.UserByName(name) })
}

// UserByID: see store.Store.UserByID.
func (e *Engine) UserByID(id string) (store.User, error) {
	return again(e, func() (store.User, error) { return e.Store.UserByID(id) })
}

// Room: see store.Store.Room.
func (e *Engine) Room(name string) (proto.Room, error) {
	return again(e, func() (proto.Room, error) { return e.Store.Room(name) })
}

// RoomFor: see store.Store.RoomFor.
func (e *Engine) RoomFor(userID, room string) (proto.Room, error) {
	return again(e, func() (proto.Room, error) { return e.Store.RoomFor(userID, room) })
}

// CanRead: see store.Store.CanRead.
func (e *Engine) CanRead(userID, room string) (proto.RoomKind, error) {
	return again(e, func() (proto.RoomKind, error) { return e.Store.CanRead(userID, room) })
}

// History: see store.Store.History.
func (e *Engine) History(userID, room string, before, after *uint64, limit int) ([]proto.Message, bool, error) {
	type page struct {
		msgs []proto.Message
		more bool
	}
	p, err := again(e, func() (page, error) {
		msgs, more, err := e.Store.History(userID, room, before, after, limit)
		return page{msgs, more}, err
	})
	return p.msgs, p.more, err
}

// Backup writes the cache, in the single-process format, once it has applied everything stored
// before the call.
func (e *Engine) Backup(w io.Writer) (int64, error) {
	if !e.caughtUp() {
		return 0, fmt.Errorf("cluster: backup: %w", ErrUnavailable)
	}
	return e.Store.Backup(w)
}

func again[R any](e *Engine, read func() (R, error)) (R, error) {
	r, err := read()
	if errors.Is(err, store.ErrNotFound) && e.caughtUp() {
		r, err = read()
	}
	return r, err
}

// deepCopy copies src into dst through JSON, the store's own encoding, so that fn cannot change
// the original through a shared slice.
func deepCopy[T any](dst *T, src T) error {
	data, err := json.Marshal(src)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, dst)
}
