package hub

import (
	"errors"

	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

// MembershipChanged tells the open sockets of the users concerned by a change of a room's
// membership (the store has it already): those who became or stopped being members and, in a
// room with a member list, its members, as the caller names them. Each socket gets a room frame
// with the room as its user sees it. A user who can no longer read the room (a private or dm
// room they left or were removed from) gets it with Member false and nothing but its name, kind
// and times, and their sockets stop being members of it: they get nothing more from it.
//
// It reads the store and queues frames, never waiting on a socket. The store calls it after
// every change of membership it commits (store.Observer); Appended calls it when a message made
// its sender a member of a public room.
func (h *Hub) MembershipChanged(room string, userIDs []string) {
	for _, id := range userIDs {
		conns := h.userConns(id)
		if len(conns) == 0 {
			continue
		}
		view, err := h.st.RoomFor(id, room)
		if errors.Is(err, store.ErrNotFound) {
			// A private or dm room they are no longer in, or a room deleted since.
			bare, err := h.st.Room(room)
			if err != nil {
				continue // deleted: DeleteRoom has dropped it
			}
			view = proto.Room{Name: bare.Name, Kind: bare.Kind, CreatedAt: bare.CreatedAt, LastSeq: bare.LastSeq, LastTS: bare.LastTS}
			h.evict(room, conns)
		} else if err != nil {
			h.log.Error("room_view_failed", "room", room, "err", err)
			continue
		}
		frame := encode(proto.RoomFrame{Type: proto.TypeRoom, Room: view})
		for _, c := range conns {
			c.send(frame)
		}
	}
}

// evict ends the membership of conns in the live room, if it is in memory.
func (h *Hub) evict(name string, conns []*conn) {
	h.mu.Lock()
	r := h.rooms[name]
	h.mu.Unlock()
	if r == nil {
		return
	}
	empty := false
	for _, c := range conns {
		_, empty = r.leave(c)
	}
	if empty {
		h.release(r)
	}
}

// markRead moves c's user's read marker of a room. Every open socket of the user, all
// sessions, learns where it now is from ReadMoved.
func (h *Hub) markRead(c *conn, room string, seq uint64) error {
	_, err := h.st.SetRead(c.user.ID, room, seq)
	return err
}

// ReadMoved tells every open socket of the user, all sessions, where the read marker of a room
// now is (store.Observer).
func (h *Hub) ReadMoved(userID, room string, seq uint64) {
	frame := encode(proto.Read{Type: proto.TypeRead, Room: room, Seq: seq})
	for _, c := range h.userConns(userID) {
		c.send(frame)
	}
}

// refusal is the error frame's code and message for a send, edit or deletion the store
// refused.
func refusal(err error) (code, message string) {
	switch {
	case errors.Is(err, store.ErrInvalidTarget):
		return proto.CodeInvalidTarget, "There is no message to change at that seq."
	case errors.Is(err, store.ErrNotAllowed):
		return proto.CodeNotAllowed, "You may not change that message."
	default:
		// store.ErrNotFound: a room deleted, or a private room left, since the join.
		return proto.CodeInvalidRoom, "There is no room with that name."
	}
}
