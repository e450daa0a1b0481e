package api

import (
	"log/slog"
	"net/http"

	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

// deleteRoom deletes a room and its history at once; the store tells the hub (its Observer),
// so that its members get nothing more from it. The default room stays: every new user lands
// there.
func (a *API) deleteRoom(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !proto.ValidRoomName(room) {
		a.writeError(w, r, errInvalidRoom)
		return
	}
	if room == store.DefaultRoom {
		a.writeError(w, r, errorf(http.StatusForbidden, proto.CodeForbidden, "The room "+store.DefaultRoom+" cannot be deleted."))
		return
	}
	if err := a.st.DeleteRoom(room); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.log.Info("room_deleted", slog.String("room", room), slog.String("user", claimsOf(r).Name))
	w.WriteHeader(http.StatusNoContent)
}
