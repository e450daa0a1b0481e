//go:build !js

package client_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"kaiwa/server"
	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// member starts a session of a user signed in through api, which lists the user's rooms and
// joins those the user is a member of, and records its events.
func member(t *testing.T, ctx context.Context, api *client.API, tb proto.TokenBody) (*client.Session, *recorder) {
	t.Helper()
	sess := client.NewSession(api, client.Options{Token: &tb, MemberRooms: true})
	events := record(ctx, sess.Subscribe(client.Filter{}).C())
	go sess.Run(ctx)
	return sess, events
}

// login signs an existing user in again, as on a second device.
func login(t *testing.T, base, name string) (*client.API, proto.TokenBody) {
	t.Helper()
	api := client.NewAPI(base, nil)
	tb, err := api.Login(context.Background(), name, "password-"+name)
	if err != nil {
		t.Fatal(err)
	}
	return api, tb
}

func unreadIs(sess *client.Session, room string, unread, mentions int) func() bool {
	return func() bool {
		u, m, _ := sess.Unread(room)
		return u == unread && m == mentions
	}
}

// TestUnreadAcrossDevices: messages from another user raise the unread count and, when they
// mention the user, the mentions, on each of the user's sessions; a read marker moved on one
// clears the badge on the other, through the server's read frame; the marker is stored.
// MarkRead called many times in a row sends few read frames, the last with the highest seq.
func TestUnreadAcrossDevices(t *testing.T) {
	t.Parallel()
	ts, st := startServer(t, server.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	api1, tb1 := register(t, ts.URL, "alice")
	api2, tb2 := login(t, ts.URL, "alice")
	phone, _ := member(t, ctx, api1, tb1)
	laptop, laptopEvents := member(t, ctx, api2, tb2)
	bobAPI, bobToken := register(t, ts.URL, "bob")
	bob, _ := member(t, ctx, bobAPI, bobToken)
	for _, sess := range []*client.Session{phone, laptop, bob} {
		waitFor(t, "general listed and joined", func() bool {
			return sess.State() == client.StateConnected && slices.ContainsFunc(sess.RoomList(), func(r proto.Room) bool { return r.Name == "general" && r.Member })
		})
	}

	bob.Send("general", "hello")
	bob.Send("general", "are you there @alice?")
	bob.Send("general", "@carol too")
	for _, sess := range []*client.Session{phone, laptop} {
		waitFor(t, "3 unread, 1 mention", unreadIs(sess, "general", 3, 1))
	}
	if u, m := laptop.UnreadTotal(); u != 3 || m != 1 {
		t.Fatalf("total %d unread, %d mentions; want 3, 1", u, m)
	}
	if u, _, _ := bob.Unread("general"); u != 0 {
		t.Fatalf("bob has %d unread of his own messages", u)
	}

	for seq := uint64(1); seq <= 50; seq++ {
		phone.MarkRead("general", min(seq, 3))
	}
	waitFor(t, "the laptop's badge cleared by the phone's read", unreadIs(laptop, "general", 0, 0))
	if _, _, read := laptop.Unread("general"); read != 3 {
		t.Fatalf("laptop's marker at %d, want 3", read)
	}
	reads := 0
	for _, ev := range laptopEvents.snapshot() {
		if ev.Kind == client.EventRead && ev.Room == "general" {
			reads++
		}
	}
	if reads == 0 || reads > 3 {
		t.Fatalf("%d read events on the laptop for 50 MarkRead calls within a moment, want 1 to 3 (one a second)", reads)
	}
	aliceID := tb1.User.ID
	room, err := st.RoomFor(aliceID, "general")
	if err != nil {
		t.Fatal(err)
	}
	if room.ReadSeq != 3 || room.Unread != 0 {
		t.Fatalf("stored marker %d with %d unread, want 3 and 0", room.ReadSeq, room.Unread)
	}

	bob.Send("general", "one more")
	waitFor(t, "1 unread after the read", unreadIs(laptop, "general", 1, 0))
	laptop.Send("general", "here")
	for _, sess := range []*client.Session{phone, laptop} {
		waitFor(t, "an own message reads everything below it", unreadIs(sess, "general", 0, 0))
	}
}

// TestEditAndDelete: edits and deletions go through the outbox and come back to every member
// as messages of their own kind and seq, naming their target; they count as nothing unread.
// The server's refusals (another's message, no such target, a deleted one) fail them.
func TestEditAndDelete(t *testing.T) {
	t.Parallel()
	ts, _ := startServer(t, server.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	aliceAPI, aliceToken := register(t, ts.URL, "alice")
	alice, aliceEvents := member(t, ctx, aliceAPI, aliceToken)
	bobAPI, bobToken := register(t, ts.URL, "bob")
	bob, bobEvents := member(t, ctx, bobAPI, bobToken)
	for _, sess := range []*client.Session{alice, bob} {
		waitFor(t, "general listed", func() bool { return len(sess.RoomList()) > 0 && sess.State() == client.StateConnected })
	}
	acked := func(r *recorder, id string) uint64 {
		t.Helper()
		var seq uint64
		waitFor(t, "ack of "+id, func() bool {
			for _, ev := range r.snapshot() {
				if ev.Kind == client.EventAck && ev.ID == id {
					seq = ev.Seq
					return true
				}
			}
			return false
		})
		return seq
	}
	failed := func(sess *client.Session, id, code string) {
		t.Helper()
		waitFor(t, id+" failed with "+code, func() bool {
			p, ok := outboxEntry(sess, id)
			return ok && p.Failed && p.Code == code
		})
	}
	received := func(r *recorder, seq uint64) client.Event {
		t.Helper()
		var got client.Event
		waitFor(t, "message frame of the change", func() bool {
			for _, ev := range r.snapshot() {
				if ev.Kind == client.EventMessage && ev.Message.Seq == seq {
					got = ev
					return true
				}
			}
			return false
		})
		return got
	}

	target := acked(aliceEvents, alice.Send("general", "helo"))
	waitFor(t, "bob has 1 unread", unreadIs(bob, "general", 1, 0))
	edit := acked(aliceEvents, alice.Edit("general", target, "hello @bob"))
	if ev := received(bobEvents, edit); ev.Message.Kind != proto.KindEdit || ev.Message.Target != target || ev.Message.Text != "hello @bob" {
		t.Fatalf("bob got %+v, want the edit of %d", ev.Message, target)
	}
	failed(bob, bob.Edit("general", target, "not mine"), proto.CodeNotAllowed)
	failed(alice, alice.Edit("general", 999, "nothing there"), proto.CodeInvalidTarget)
	failed(alice, alice.Edit("general", edit, "an edit of an edit"), proto.CodeInvalidTarget)

	deletion := acked(aliceEvents, alice.Delete("general", target))
	if ev := received(bobEvents, deletion); ev.Message.Kind != proto.KindDelete || ev.Message.Target != target || ev.Message.Text != "" {
		t.Fatalf("bob got %+v, want the deletion of %d", ev.Message, target)
	}
	failed(alice, alice.Delete("general", target), proto.CodeInvalidTarget)
	failed(alice, alice.Edit("general", target, "after deletion"), proto.CodeInvalidTarget)
	if u, m, _ := bob.Unread("general"); u != 1 || m != 0 {
		t.Fatalf("bob has %d unread, %d mentions after an edit and a deletion; want 1, 0", u, m)
	}
	page, err := bob.Messages(ctx, "general", client.PageQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) == 0 || !page.Messages[0].Deleted || page.Messages[0].Text != "" {
		t.Fatalf("history %+v, want the first message deleted", page.Messages)
	}
}

// TestRoomChanges: a user added to a private room by another gets a room event on their open
// session, which joins it: its messages arrive and count. Removed, the room leaves the list.
// A session started later lists and joins the rooms the user is a member of. A dm started by
// another is joined alike.
func TestRoomChanges(t *testing.T) {
	t.Parallel()
	ts, _ := startServer(t, server.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	aliceAPI, aliceToken := register(t, ts.URL, "alice")
	alice, _ := member(t, ctx, aliceAPI, aliceToken)
	bobAPI, bobToken := register(t, ts.URL, "bob")
	bob, bobEvents := member(t, ctx, bobAPI, bobToken)
	waitFor(t, "bob connected", func() bool { return bob.State() == client.StateConnected })

	if _, err := alice.NewRoom(ctx, "ops", proto.RoomPrivate); err != nil {
		t.Fatal(err)
	}
	if err := alice.AddMember(ctx, "ops", "bob"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob's room event for ops", func() bool {
		return bobEvents.count(func(ev client.Event) bool {
			return ev.Kind == client.EventRoom && ev.Room == "ops" && ev.RoomInfo.Member && slices.Equal(ev.RoomInfo.Members, []string{"alice", "bob"})
		}) == 1
	})
	alice.Join("ops")
	alice.Send("ops", "welcome @bob")
	waitFor(t, "bob got the message in ops", func() bool {
		return bobEvents.count(func(ev client.Event) bool { return ev.Kind == client.EventMessage && ev.Room == "ops" }) == 1
	})
	waitFor(t, "bob has 1 unread mention in ops", unreadIs(bob, "ops", 1, 1))

	// A second session of bob, started now, joins ops by itself.
	api2, tb2 := login(t, ts.URL, "bob")
	bob2, bob2Events := member(t, ctx, api2, tb2)
	waitFor(t, "bob's second session counts ops", unreadIs(bob2, "ops", 1, 1))
	alice.Send("ops", "second")
	waitFor(t, "bob's second session got the new message", func() bool {
		return bob2Events.count(func(ev client.Event) bool { return ev.Kind == client.EventMessage && ev.Room == "ops" }) == 1
	})
	waitFor(t, "both of bob's sessions count 2", func() bool { return unreadIs(bob, "ops", 2, 1)() && unreadIs(bob2, "ops", 2, 1)() })

	// One started from kept rooms resumes ops after the seq it had seen, not from the listing's.
	api3, tb3 := login(t, ts.URL, "bob")
	bob3 := client.NewSession(api3, client.Options{Token: &tb3, MemberRooms: true, Rooms: map[string]uint64{"ops": 1}})
	bob3Messages := bob3.Subscribe(client.Filter{Room: "ops", Kinds: []client.EventKind{client.EventMessage}})
	go bob3.Run(ctx)
	select {
	case ev := <-bob3Messages.C():
		if ev.Message.Seq != 2 {
			t.Fatalf("the session kept at seq 1 resumed ops with seq %d", ev.Message.Seq)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the session kept at seq 1 got nothing of ops within 30 s")
	}

	if err := alice.RemoveMember(ctx, "ops", "bob"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*recorder{bobEvents, bob2Events} {
		waitFor(t, "bob's removal from ops", func() bool {
			return r.count(func(ev client.Event) bool {
				return ev.Kind == client.EventRoom && ev.Room == "ops" && !ev.RoomInfo.Member
			}) == 1
		})
	}
	if slices.ContainsFunc(bob.RoomList(), func(r proto.Room) bool { return r.Name == "ops" }) {
		t.Fatal("ops still listed after bob's removal")
	}
	if u, _ := bob.UnreadTotal(); u != 0 {
		t.Fatalf("bob's total unread %d after removal, want 0", u)
	}

	users, err := alice.Users(ctx, "bo")
	if err != nil || len(users) != 1 || users[0].Name != "bob" {
		t.Fatalf("users starting with bo: %v, %v; want bob", users, err)
	}
	dm, err := alice.DM(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob's room event for the dm", func() bool {
		return bobEvents.count(func(ev client.Event) bool {
			return ev.Kind == client.EventRoom && ev.Room == dm.Name && ev.RoomInfo.Kind == proto.RoomDM && ev.RoomInfo.Member
		}) == 1
	})
	alice.Join(dm.Name)
	alice.Send(dm.Name, "psst")
	waitFor(t, "bob has 1 unread in the dm", unreadIs(bob, dm.Name, 1, 0))
}

// TestMemberRoomsBeyondJoinBurst: a user who is a member of more rooms than the server takes
// joins at once has every one of them joined, as the server's join rate allows.
func TestMemberRoomsBeyondJoinBurst(t *testing.T) {
	t.Parallel()
	ts, st := startServer(t, server.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	api, tb := register(t, ts.URL, "alice")
	const n = proto.JoinBurst + 50
	for i := range n {
		if _, err := st.NewRoom(tb.User.ID, fmt.Sprint("room-", i), proto.RoomPrivate); err != nil {
			t.Fatal(err)
		}
	}
	sess, events := member(t, ctx, api, tb)
	// Every join is answered with the room's presence: alice is online in it.
	waitFor(t, "every room joined", func() bool {
		rooms := map[string]bool{}
		for _, ev := range events.snapshot() {
			if ev.Kind == client.EventPresence && slices.Contains(ev.Online, "alice") {
				rooms[ev.Room] = true
			}
		}
		return len(rooms) == n+1 // and general
	})
	if got := len(sess.RoomList()); got != n+1 {
		t.Fatalf("%d rooms listed, want %d", got, n+1)
	}
	if refused := events.count(func(ev client.Event) bool { return ev.Kind == client.EventJoinRefused }); refused != 0 {
		t.Fatalf("%d joins refused", refused)
	}
}

// TestReadBelowListedIsExact: a marker moved to the middle of what the room listing counted
// leaves counts the session cannot work out alone (an edit among the messages above the new
// marker counts as nothing): both of the user's sessions end with the server's exact counts.
func TestReadBelowListedIsExact(t *testing.T) {
	t.Parallel()
	ts, _ := startServer(t, server.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	aliceAPI, aliceToken := register(t, ts.URL, "alice")
	bobAPI, bobToken := register(t, ts.URL, "bob")
	bob := client.NewSession(bobAPI, client.Options{Token: &bobToken, Rooms: map[string]uint64{"general": 0}})
	go bob.Run(ctx)
	bob.Send("general", "one")
	bob.Send("general", "two")
	bob.Send("general", "three")
	waitFor(t, "bob's messages stored", func() bool { return len(bob.Outbox()) == 0 })
	bob.Edit("general", 1, "one, edited")
	bob.Send("general", "five, @alice")
	waitFor(t, "bob's edit and message stored", func() bool { return len(bob.Outbox()) == 0 })

	phone, _ := member(t, ctx, aliceAPI, aliceToken)
	laptopAPI, laptopToken := login(t, ts.URL, "alice")
	laptop, _ := member(t, ctx, laptopAPI, laptopToken)
	for _, sess := range []*client.Session{phone, laptop} {
		waitFor(t, "4 unread and a mention listed", unreadIs(sess, "general", 4, 1))
	}
	laptop.MarkRead("general", 2) // above it: three, the edit, five
	for _, sess := range []*client.Session{phone, laptop} {
		waitFor(t, "2 unread and the mention after reading up to 2", unreadIs(sess, "general", 2, 1))
	}
}

// TestUnreadExactThroughRotations: with 2 s access tokens, sockets are replaced every 1.5 s
// while another user writes; the counts end exact, nothing counted twice or missed.
func TestUnreadExactThroughRotations(t *testing.T) {
	t.Parallel()
	ts, st := startServer(t, server.Config{AccessTTL: 2 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	aliceAPI, aliceToken := register(t, ts.URL, "alice")
	alice, aliceEvents := member(t, ctx, aliceAPI, aliceToken)
	bobAPI, bobToken := register(t, ts.URL, "bob")
	bob := client.NewSession(bobAPI, client.Options{Token: &bobToken, Rooms: map[string]uint64{"general": 0}})
	go bob.Run(ctx)
	waitFor(t, "alice connected", func() bool { return alice.State() == client.StateConnected })
	const n = 40
	for i := range n {
		text := fmt.Sprint("message ", i)
		if i%2 == 0 {
			text += " @alice"
		}
		bob.Send("general", text)
		time.Sleep(100 * time.Millisecond)
	}
	waitFor(t, "bob's messages stored", func() bool { return len(bob.Outbox()) == 0 })
	waitFor(t, "alice received every message", func() bool {
		return aliceEvents.count(func(ev client.Event) bool { return ev.Kind == client.EventMessage && ev.Message.From == "bob" }) == n
	})
	if u, m, _ := alice.Unread("general"); u != n || m != n/2 {
		t.Fatalf("alice counts %d unread, %d mentions; want %d, %d", u, m, n, n/2)
	}
	room, err := st.RoomFor(aliceToken.User.ID, "general")
	if err != nil {
		t.Fatal(err)
	}
	if room.Unread != n || room.Mentions != n/2 {
		t.Fatalf("the server counts %d unread, %d mentions; want %d, %d", room.Unread, room.Mentions, n, n/2)
	}
	if replaced := aliceEvents.count(func(ev client.Event) bool { return ev.Kind == client.EventReplaced }); replaced < 2 {
		t.Fatalf("%d sockets replaced, want at least 2", replaced)
	}
}
