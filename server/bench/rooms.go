package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

// roomsScenario lists the rooms of a user who is a member of 200 rooms holding 1 000 000
// messages between them (GET /api/rooms in process: the store's listing and the JSON body),
// with the user's read markers at random places, so that every room has its unread and
// mention counts to compute.
func roomsScenario(ctx context.Context, e *env) error {
	st, done, err := tempStore()
	if err != nil {
		return err
	}
	defer done()
	const rooms, total, batch = 200, 1_000_000, 20_000
	me, err := st.CreateUser("me", "x", false)
	if err != nil {
		return err
	}
	var others []store.User
	for i := range 10 {
		u, err := st.CreateUser("user"+strconv.Itoa(i), "x", false)
		if err != nil {
			return err
		}
		others = append(others, u)
	}
	for r := range rooms {
		kind := proto.RoomPublic
		if r%2 == 1 {
			kind = proto.RoomPrivate
		}
		name := "r" + strconv.Itoa(r)
		if _, err := st.NewRoom(me.ID, name, kind); err != nil {
			return err
		}
		if kind == proto.RoomPrivate {
			for _, u := range others {
				if _, err := st.AddMember(me.ID, name, u.ID); err != nil {
					return err
				}
			}
		}
	}
	reqs := make([]store.AppendRequest, 0, batch)
	for n := range total {
		u := others[rand.IntN(len(others))]
		text := "a message of ordinary length, some forty chars"
		if n%20 == 0 {
			text = "@me look at this"
		}
		reqs = append(reqs, store.AppendRequest{Room: "r" + strconv.Itoa(rand.IntN(rooms)), UserID: u.ID, From: u.Name, ClientID: strconv.Itoa(n), Text: text})
		if len(reqs) < batch {
			continue
		}
		if _, err := st.AppendBatch(reqs); err != nil {
			return err
		}
		reqs = reqs[:0]
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if (n+1)%200_000 == 0 {
			e.progress("rooms: %d messages written", n+1)
		}
	}
	for r := range rooms {
		name := "r" + strconv.Itoa(r)
		room, err := st.Room(name)
		if err != nil {
			return err
		}
		if _, err := st.SetRead(me.ID, name, rand.Uint64N(room.LastSeq+1)); err != nil {
			return err
		}
	}
	var h histogram
	const lists = 2_000
	for range lists {
		start := time.Now()
		list, err := st.RoomsFor(me.ID)
		if err == nil {
			_, err = json.Marshal(proto.RoomList{Rooms: list})
		}
		h.record(time.Since(start))
		if err != nil {
			return err
		}
		if len(list) != rooms+1 { // and general
			return fmt.Errorf("rooms: the list has %d rooms", len(list))
		}
	}
	e.add(Row{
		Scenario: "rooms",
		Result: fmt.Sprintf("GET /api/rooms of a member of 200 rooms holding 1 000 000 messages: p50 %s, p99 %s (%d lists)",
			msPrecise(h.quantile(.5)), msPrecise(h.quantile(.99)), lists),
		Target:  "p99 ≤ 5 ms in process",
		Figures: map[string]float64{"p50_ms": msf(h.quantile(.5)), "p99_ms": msf(h.quantile(.99))},
	})
	return nil
}
