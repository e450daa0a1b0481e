package client

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"kaiwa/shared/proto"
)

// Call calls the HTTP API with the session's access token: method and path (such as "GET",
// "/api/rooms"), in encoded as the JSON body when not nil, the answer decoded into out when
// not nil. On a 401 it refreshes the token once (sharing a refresh already in flight, the
// timer's or another call's) and tries again once. When the refresh is refused the error
// wraps ErrLoginRequired, and Run ends.
func (s *Session) Call(ctx context.Context, method, path string, in, out any) error {
	token := s.AccessToken()
	err := s.api.do(ctx, method, path, token, in, out)
	if !unauthorized(err) {
		return err
	}
	if now := s.AccessToken(); now != "" && now != token {
		return s.api.do(ctx, method, path, now, in, out) // renewed meanwhile
	}
	f := s.startRefresh()
	select {
	case <-f.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if f.err != nil {
		if unauthorized(f.err) {
			return fmt.Errorf("%w: %w", ErrLoginRequired, f.err)
		}
		return f.err
	}
	return s.api.do(ctx, method, path, f.tb.AccessToken, in, out)
}

func unauthorized(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.Status == 401
}

// Me returns the signed-in user.
func (s *Session) Me(ctx context.Context) (proto.User, error) {
	var ub proto.UserBody
	err := s.Call(ctx, "GET", "/api/me", nil, &ub)
	return ub.User, err
}

// Rooms lists the rooms: the user's and every public one. The answer also refreshes the
// session's room list and unread counts (RoomList, Unread).
func (s *Session) Rooms(ctx context.Context) ([]proto.Room, error) {
	var rl proto.RoomList
	if err := s.Call(ctx, "GET", "/api/rooms", nil, &rl); err != nil {
		return nil, err
	}
	s.seed(rl.Rooms...)
	return rl.Rooms, nil
}

// CreateRoom creates a room. A name that is not a valid room name fails without asking the
// server, with the server's error (invalid_room).
func (s *Session) CreateRoom(ctx context.Context, name string) (proto.Room, error) {
	if err := checkRoomName(name); err != nil {
		return proto.Room{}, err
	}
	var rb proto.RoomBody
	if err := s.Call(ctx, "POST", "/api/rooms", proto.CreateRoom{Name: name}, &rb); err != nil {
		return proto.Room{}, err
	}
	s.seed(rb.Room)
	return rb.Room, nil
}

// Messages reads a page of a room's history (see PageQuery).
func (s *Session) Messages(ctx context.Context, room string, q PageQuery) (proto.MessagePage, error) {
	path, err := messagesPath(room, q)
	if err != nil {
		return proto.MessagePage{}, err
	}
	var page proto.MessagePage
	err = s.Call(ctx, "GET", path, nil, &page)
	return page, err
}

// NewRoom creates a room of a kind (proto.RoomPublic or proto.RoomPrivate) with the user as
// its first member, and adds it to RoomList. A name that is not a valid room name fails
// without asking the server (invalid_room).
func (s *Session) NewRoom(ctx context.Context, name string, kind proto.RoomKind) (proto.Room, error) {
	if err := checkRoomName(name); err != nil {
		return proto.Room{}, err
	}
	var rb proto.RoomBody
	if err := s.Call(ctx, "POST", "/api/rooms", proto.CreateRoom{Name: name, Kind: kind}, &rb); err != nil {
		return proto.Room{}, err
	}
	s.seed(rb.Room)
	return rb.Room, nil
}

// AddMember makes a user (by name) a member of a room: oneself for a public room (joining
// it), anyone for a private room the user is a member of. The sockets of everyone concerned
// get a room frame (EventRoom).
func (s *Session) AddMember(ctx context.Context, room, user string) error {
	if err := checkRoomName(room); err != nil {
		return err
	}
	return s.Call(ctx, "POST", "/api/rooms/"+url.PathEscape(room)+"/members", proto.UserRef{User: user}, nil)
}

// RemoveMember ends a user's (by name) membership of a room: oneself (leaving it), or another
// by the room's creator or an admin. The session leaves the room once the server's room frame
// says the user is no longer a member.
func (s *Session) RemoveMember(ctx context.Context, room, user string) error {
	if err := checkRoomName(room); err != nil {
		return err
	}
	return s.Call(ctx, "DELETE", "/api/rooms/"+url.PathEscape(room)+"/members/"+url.PathEscape(user), nil, nil)
}

// DM returns the direct-message room of the user and another (by name), creating it when
// there is none, and adds it to RoomList.
func (s *Session) DM(ctx context.Context, user string) (proto.Room, error) {
	var rb proto.RoomBody
	if err := s.Call(ctx, "POST", "/api/dms", proto.UserRef{User: user}, &rb); err != nil {
		return proto.Room{}, err
	}
	s.seed(rb.Room)
	return rb.Room, nil
}

// Users returns up to proto.UserSearchMax users whose names start with prefix, sorted.
func (s *Session) Users(ctx context.Context, prefix string) ([]proto.UserName, error) {
	var ul proto.UserList
	err := s.Call(ctx, "GET", "/api/users?"+url.Values{"prefix": {prefix}}.Encode(), nil, &ul)
	return ul.Users, err
}
