package api

import (
	"log/slog"
	"net/http"
	"strings"

	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

// Rooms, membership, dms and user search (§7). Every path that names a room answers a private or
// dm room the caller is not a member of exactly as a room that was never created: the store
// refuses both with ErrNotFound, and nothing here looks at the room before the store has
// authorized the caller. The room frames that tell open sockets of a membership change come
// from the store's Observer (the hub), whatever asked for the change.

var (
	errInvalidRoom = errorf(http.StatusBadRequest, proto.CodeInvalidRoom, "A room name has 1 to 64 of a-z, 0-9 and -.")
	errDMName      = errorf(http.StatusBadRequest, proto.CodeInvalidRoom, "Room names starting with dm- are kept for direct messages.")
	errRoomKind    = errorf(http.StatusBadRequest, proto.CodeBadRequest, "A room's kind is public or private.")
	errDMSelf      = errorf(http.StatusBadRequest, proto.CodeBadRequest, "A direct message is with someone else.")
)

func (a *API) rooms(w http.ResponseWriter, r *http.Request) {
	rooms, err := a.st.RoomsFor(claimsOf(r).Subject)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, proto.RoomList{Rooms: rooms})
}

func (a *API) createRoom(w http.ResponseWriter, r *http.Request) {
	var req proto.CreateRoom
	if err := decode(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	switch {
	case !proto.ValidRoomName(req.Name):
		a.writeError(w, r, errInvalidRoom)
		return
	case strings.HasPrefix(req.Name, proto.DMPrefix):
		a.writeError(w, r, errDMName)
		return
	case req.Kind == "":
		req.Kind = proto.RoomPublic
	case req.Kind != proto.RoomPublic && req.Kind != proto.RoomPrivate:
		a.writeError(w, r, errRoomKind)
		return
	}
	if a.limited(w, r, a.cfg.RoomCreations, claimsOf(r).Subject) {
		return
	}
	room, err := a.st.NewRoom(claimsOf(r).Subject, req.Name, req.Kind)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.log.Info("room_created", slog.String("room", room.Name), slog.String("kind", string(room.Kind)), slog.String("user", claimsOf(r).Name))
	writeJSON(w, http.StatusCreated, proto.RoomBody{Room: room})
}

// roomName returns the path's room, or answers 400 invalid_room.
func (a *API) roomName(w http.ResponseWriter, r *http.Request) (string, bool) {
	room := r.PathValue("room")
	if !proto.ValidRoomName(room) {
		a.writeError(w, r, errInvalidRoom)
		return "", false
	}
	return room, true
}

func (a *API) room(w http.ResponseWriter, r *http.Request) {
	name, ok := a.roomName(w, r)
	if !ok {
		return
	}
	room, err := a.st.RoomFor(claimsOf(r).Subject, name)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, proto.RoomBody{Room: room})
}

func (a *API) messages(w http.ResponseWriter, r *http.Request) {
	room, ok := a.roomName(w, r)
	if !ok {
		return
	}
	before, after, limit, err := pageQuery(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	msgs, more, err := a.st.History(claimsOf(r).Subject, room, before, after, limit)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, proto.MessagePage{Messages: msgs, HasMore: more})
}

// userNamed returns the user a request names, or store.ErrNotFound (also for a name that
// cannot exist).
func (a *API) userNamed(name string) (store.User, error) {
	name, ok := proto.NormalizeUsername(name)
	if !ok {
		return store.User{}, store.ErrNotFound
	}
	return a.st.UserByName(name)
}

func (a *API) addMember(w http.ResponseWriter, r *http.Request) {
	room, ok := a.roomName(w, r)
	if !ok {
		return
	}
	var req proto.UserRef
	if err := decode(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	by := claimsOf(r).Subject
	// Authorize before looking the user up: for a room the caller may not see, every answer is
	// the missing room's.
	if _, err := a.st.CanRead(by, room); err != nil {
		a.writeError(w, r, err)
		return
	}
	u, err := a.userNamed(req.User)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	added, err := a.st.AddMember(by, room, u.ID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if added {
		a.log.Info("member_added", slog.String("room", room), slog.String("user", u.Name), slog.String("by", claimsOf(r).Name))
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) removeMember(w http.ResponseWriter, r *http.Request) {
	room, ok := a.roomName(w, r)
	if !ok {
		return
	}
	by := claimsOf(r).Subject
	if _, err := a.st.CanRead(by, room); err != nil {
		a.writeError(w, r, err)
		return
	}
	u, err := a.userNamed(r.PathValue("user"))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	removed, err := a.st.RemoveMember(by, room, u.ID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if removed {
		a.log.Info("member_removed", slog.String("room", room), slog.String("user", u.Name), slog.String("by", claimsOf(r).Name))
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) dm(w http.ResponseWriter, r *http.Request) {
	var req proto.UserRef
	if err := decode(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	other, err := a.userNamed(req.User)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	me := claimsOf(r).Subject
	if other.ID == me {
		a.writeError(w, r, errDMSelf)
		return
	}
	if a.limited(w, r, a.cfg.RoomCreations, me) {
		return
	}
	room, created, err := a.st.DM(me, other.ID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		a.log.Info("dm_created", slog.String("room", room.Name))
	}
	writeJSON(w, status, proto.RoomBody{Room: room})
}

func (a *API) users(w http.ResponseWriter, r *http.Request) {
	prefix := strings.ToLower(r.URL.Query().Get("prefix"))
	if len(prefix) > proto.UsernameMax {
		writeJSON(w, http.StatusOK, proto.UserList{Users: []proto.UserName{}})
		return
	}
	users, err := a.st.UsersByPrefix(prefix, proto.UserSearchMax)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, proto.UserList{Users: users})
}
