package store

import (
	"io"

	"kaiwa/shared/proto"
)

// Engine is what the server (packages hub, api, auth and server) asks of its storage: the
// methods of *Store it calls. A single process serves a *Store; a cluster node serves an
// engine that embeds its local *Store for reads and puts every mutation through the cluster's
// log, which each node applies to its own copy (At). Either way the effects of a change on open
// sockets come from the Observer of the *Store that applies it: SetObserver sets it there (an
// engine embedding a *Store gets the method as it is), and server.New wires its hub so.
type Engine interface {
	SetObserver(o Observer)
	SigningKey() []byte
	Backup(w io.Writer) (int64, error)

	CreateUser(name, passwordHash string, admin bool) (User, error)
	UserByName(name string) (User, error)
	UserByID(id string) (User, error)
	UpdateUser(id string, fn func(*User)) (User, error)
	SetUserDisabled(id string, disabled bool) ([]string, error)
	UsersByPrefix(prefix string, limit int) ([]proto.UserName, error)

	CreateSession(sess Session) error
	Session(id string) (Session, error)
	UpdateSession(id string, fn func(*Session) error) (Session, error)
	RevokeUserSessions(userID string) ([]string, error)

	NewRoom(creatorID, name string, kind proto.RoomKind) (proto.Room, error)
	DeleteRoom(name string) error
	Room(name string) (proto.Room, error)
	RoomFor(userID, room string) (proto.Room, error)
	RoomsFor(userID string) ([]proto.Room, error)
	CanRead(userID, room string) (proto.RoomKind, error)
	AddMember(byID, room, userID string) (bool, error)
	RemoveMember(byID, room, userID string) (bool, error)
	DM(userID, otherID string) (proto.Room, bool, error)
	SetRead(userID, room string, seq uint64) (uint64, error)

	AppendBatch(reqs []AppendRequest) ([]AppendResult, error)
	History(userID, room string, before, after *uint64, limit int) ([]proto.Message, bool, error)
	After(room string, after uint64, limit, maxBytes int) ([]StoredMessage, error)
}

var _ Engine = (*Store)(nil)
