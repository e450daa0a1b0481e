package store

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"kaiwa/shared/proto"
)

// BenchmarkRoomsFor is GET /api/rooms in process (RoomsFor and the JSON body) for a user who is
// a member of 200 rooms holding 1 000 000 messages between them, one in 40 an edit, one in 20
// mentioning the user, with the user's read markers at random places. It reports the p50 and
// p99 of one listing. Building the history takes a minute or two: run it alone.
func BenchmarkRoomsFor(b *testing.B) {
	const rooms, total, batch = 200, 1_000_000, 5000
	st, err := Open(filepath.Join(b.TempDir(), "kaiwa.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	st.db.NoSync = true // setup only: the listing reads
	me, err := st.CreateUser("me", "x", false)
	if err != nil {
		b.Fatal(err)
	}
	var others []User
	for i := range 10 {
		u, err := st.CreateUser("user"+strconv.Itoa(i), "x", false)
		if err != nil {
			b.Fatal(err)
		}
		others = append(others, u)
	}
	for r := range rooms {
		name := "r" + strconv.Itoa(r)
		kind := proto.RoomPublic
		if r%2 == 1 {
			kind = proto.RoomPrivate
		}
		if _, err := st.NewRoom(me.ID, name, kind); err != nil {
			b.Fatal(err)
		}
		for _, u := range others {
			if _, err := st.AddMember(me.ID, name, u.ID); err != nil && kind == proto.RoomPrivate {
				b.Fatal(err)
			}
		}
	}
	rng := rand.New(rand.NewPCG(7, 7))
	firstAuthor := map[string]User{} // edits are their author's: of each room's first message
	reqs := make([]AppendRequest, 0, batch)
	for n := range total {
		u := others[rng.IntN(len(others))]
		room := "r" + strconv.Itoa(rng.IntN(rooms))
		first, ok := firstAuthor[room]
		if !ok {
			firstAuthor[room] = u
		}
		req := AppendRequest{Room: room, UserID: u.ID, From: u.Name, ClientID: strconv.Itoa(n), Text: "a message of ordinary length, some forty chars"}
		switch {
		case n%40 == 39 && ok:
			req.UserID, req.From = first.ID, first.Name
			req.Kind, req.Target, req.Text = proto.KindEdit, 1, "edited"
		case n%20 == 0:
			req.Text = "@me look at this"
		}
		if reqs = append(reqs, req); len(reqs) == batch {
			res, err := st.AppendBatch(reqs)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range res {
				if r.Err != nil {
					b.Fatal(r.Err)
				}
			}
			reqs = reqs[:0]
		}
	}
	for r := range rooms {
		name := "r" + strconv.Itoa(r)
		room, err := st.Room(name)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.SetRead(me.ID, name, rng.Uint64N(room.LastSeq+1)); err != nil {
			b.Fatal(err)
		}
	}
	st.db.NoSync = false
	var took []time.Duration
	for b.Loop() {
		start := time.Now()
		list, err := st.RoomsFor(me.ID)
		if err != nil || len(list) != rooms+1 { // and general
			b.Fatalf("%d rooms, %v", len(list), err)
		}
		if _, err := json.Marshal(proto.RoomList{Rooms: list}); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	q := func(p float64) float64 { return float64(took[int(p*float64(len(took)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.Log(fmt.Sprintf("%d listings of %d rooms over %d messages", len(took), rooms, total))
}
