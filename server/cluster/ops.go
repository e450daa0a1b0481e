package cluster

import (
	"encoding/json"
	"fmt"
	"time"

	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

// Kinds of operation: each is one mutating method of *store.Store, with its arguments.
const (
	kindInit            = "init"
	kindSetSigningKey   = "set_signing_key"
	kindCreateUser      = "create_user"
	kindSwapUser        = "swap_user"
	kindSetUserDisabled = "set_user_disabled"
	kindCreateSession   = "create_session"
	kindSwapSession     = "swap_session"
	kindRevokeSessions  = "revoke_user_sessions"
	kindNewRoom         = "new_room"
	kindDeleteRoom      = "delete_room"
	kindAppend          = "append"
	kindAddMember       = "add_member"
	kindRemoveMember    = "remove_member"
	kindSetRead         = "set_read"
	kindDM              = "dm"
	kindPutCert         = "put_cert"
	kindDeleteCert      = "delete_cert"
)

type (
	keyArgs        struct{ Key []byte }
	createUserArgs struct {
		Name, Hash string
		Admin      bool
	}
	swapUserArgs struct {
		ID       string
		Old, New store.User
	}
	disableArgs struct {
		ID       string
		Disabled bool
	}
	sessionArgs     struct{ Session store.Session }
	swapSessionArgs struct {
		ID       string
		Old, New store.Session
	}
	userArgs    struct{ UserID string }
	newRoomArgs struct {
		Creator, Name string
		Kind          proto.RoomKind
	}
	roomArgs    struct{ Name string }
	appendArgs  struct{ Reqs []store.AppendRequest }
	memberArgs  struct{ By, Room, User string }
	setReadArgs struct {
		User, Room string
		Seq        uint64
	}
	dmArgs   struct{ User, Other string }
	certArgs struct {
		Key   string
		Value []byte
	}
	dmResult struct {
		Room    proto.Room
		Created bool
	}
)

// appliers apply each kind of operation to a cache. Their results are what the store returned.
var appliers = map[string]func(st *store.Store, raw json.RawMessage) (any, error){
	kindInit: decoded(func(st *store.Store, a keyArgs) (any, error) {
		return nil, st.Initialize(a.Key)
	}),
	kindSetSigningKey: decoded(func(st *store.Store, a keyArgs) (any, error) {
		return nil, st.SetSigningKey(a.Key)
	}),
	kindCreateUser: decoded(func(st *store.Store, a createUserArgs) (any, error) {
		return st.CreateUser(a.Name, a.Hash, a.Admin)
	}),
	kindSwapUser: decoded(func(st *store.Store, a swapUserArgs) (any, error) {
		return st.SwapUser(a.ID, a.Old, a.New)
	}),
	kindSetUserDisabled: decoded(func(st *store.Store, a disableArgs) (any, error) {
		return st.SetUserDisabled(a.ID, a.Disabled)
	}),
	kindCreateSession: decoded(func(st *store.Store, a sessionArgs) (any, error) {
		return nil, st.CreateSession(a.Session)
	}),
	kindSwapSession: decoded(func(st *store.Store, a swapSessionArgs) (any, error) {
		return st.SwapSession(a.ID, a.Old, a.New)
	}),
	kindRevokeSessions: decoded(func(st *store.Store, a userArgs) (any, error) {
		return st.RevokeUserSessions(a.UserID)
	}),
	kindNewRoom: decoded(func(st *store.Store, a newRoomArgs) (any, error) {
		return st.NewRoom(a.Creator, a.Name, a.Kind)
	}),
	kindDeleteRoom: decoded(func(st *store.Store, a roomArgs) (any, error) {
		return nil, st.DeleteRoom(a.Name)
	}),
	kindAppend: decoded(func(st *store.Store, a appendArgs) (any, error) {
		return st.AppendBatch(a.Reqs)
	}),
	kindAddMember: decoded(func(st *store.Store, a memberArgs) (any, error) {
		return st.AddMember(a.By, a.Room, a.User)
	}),
	kindRemoveMember: decoded(func(st *store.Store, a memberArgs) (any, error) {
		return st.RemoveMember(a.By, a.Room, a.User)
	}),
	kindSetRead: decoded(func(st *store.Store, a setReadArgs) (any, error) {
		return st.SetRead(a.User, a.Room, a.Seq)
	}),
	kindDM: decoded(func(st *store.Store, a dmArgs) (any, error) {
		room, created, err := st.DM(a.User, a.Other)
		return dmResult{room, created}, err
	}),
	kindPutCert: decoded(func(st *store.Store, a certArgs) (any, error) {
		return nil, st.PutCert(a.Key, a.Value)
	}),
	kindDeleteCert: decoded(func(st *store.Store, a certArgs) (any, error) {
		return nil, st.DeleteCert(a.Key)
	}),
	kindRestore: decoded(func(st *store.Store, a restoreArgs) (any, error) {
		return nil, st.Restore(a.Reset, a.Entries)
	}),
}

// decoded adapts an applier of typed arguments; arguments that do not decode are ErrBadOp on
// every node alike.
func decoded[A any](f func(st *store.Store, a A) (any, error)) func(*store.Store, json.RawMessage) (any, error) {
	return func(st *store.Store, raw json.RawMessage) (any, error) {
		var a A
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadOp, err)
		}
		return f(st, a)
	}
}

// apply applies o, the operation at stream seq, to the cache at the proposer's time, recording
// seq as applied in the same transaction.
func (e *Engine) apply(o op, seq uint64) outcome {
	f, ok := appliers[o.Kind]
	if !ok {
		return outcome{err: fmt.Errorf("%w: kind %q", ErrBadOp, o.Kind)}
	}
	v, err := f(e.Store.At(time.UnixMilli(o.Now).UTC(), seq), o.Args)
	return outcome{v, err}
}

// call proposes an operation and returns its result as R.
func call[R any](e *Engine, kind string, args any) (R, error) {
	v, err := e.propose(kind, args)
	r, _ := v.(R)
	return r, err
}
