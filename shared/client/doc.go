// Package client is Kaiwa's client session, shared by the browser app (compiled to WebAssembly)
// and native Go programs (tests, the benchmark driver, tools). It never imports go-app or the
// server.
//
// # One session per tab
//
// [API] makes the calls that need no access token (Register, Login, Refresh, Logout). A
// [Session] does everything else: it alone holds the access token, refreshes it on a timer at
// three quarters of its lifetime, keeps one WebSocket open (make-before-break on every new
// token: the new socket rejoins every room with after = the last seq seen before the old one
// closes), reconnects with backoff, resends its outbox until acked, and makes the HTTP API
// calls ([Session.Rooms], [Session.CreateRoom], [Session.Messages], [Session.Call] for any
// other path), renewing an expired token once when the server answers 401.
//
//	sess := client.NewSession(api, client.Options{
//		Token:  &tb,                                // from Login, or nil to start with a refresh
//		Rooms:  map[string]uint64{"general": 41},   // room → last seq seen (0: none)
//		Outbox: saved,                              // sends kept from before a reload
//	})
//	sub := sess.Subscribe(client.Filter{Room: "general"})
//	go sess.Run(ctx)
//	for ev := range sub.C() { ... }
//
// # Concurrency
//
// Run is the session's one owner goroutine; every other method may be called from any
// goroutine at any time, before Run, during it or after it returned, and never waits for it
// (see [Session]). Each [Subscription] has an unbounded queue drained by a goroutine of its own,
// so a consumer that stops reading costs memory, never the session's progress: close what you
// no longer read. Network writes go through a writer goroutine per socket, each with a deadline.
//
// # Events
//
// [Session.Subscribe] selects events by room and kind ([Filter]). Messages arrive once each, in
// seq order per room. A join the server refuses (a room that does not exist, or a private room
// of others) is reported once as [EventJoinRefused] and the room is forgotten. Every change of
// the outbox is reported as [EventOutbox] with the whole outbox, for the app to persist.
// [Session.Events] is the older catch-all channel.
//
// # Outbox
//
// A send is pending until its ack. A refusal for rate (rate_limited) or storage (unavailable)
// keeps it pending and sends it again after a growing delay; any other refusal (invalid_room,
// not_joined, empty_text, text_too_long, ...) marks it [Pending.Failed] with its code, and it
// stays so until [Session.Retry] or [Session.Discard]. Texts and room names the server would
// refuse, by the rules in kaiwa/shared/proto, fail at once.
//
// # Rooms, read markers and unread counts
//
// With [Options.MemberRooms] the session lists the user's rooms once its first socket is open,
// and again after every reconnect, and joins every room the user is a member of, so that the
// room list and the badges stay live. [Session.RoomList] is the room list as the session knows
// it (every room object the server gave it, kept live by messages, read markers and room
// frames); [Session.Unread] and [Session.UnreadTotal] are the counts. All three copy under a
// lock and never wait. A room frame (the user became or stopped being a member of a room, or
// its members changed) is reported as [EventRoom]; the session joins a room the user became
// a member of, and leaves and forgets one the user no longer is (a private or dm room then
// leaves RoomList; a public one stays, as not a member).
//
// The counts are exact, not estimated from what a page shows. A room object from the server
// counts what lies up to its last_seq; above it the session counts the messages it receives
// itself, which are all of them, once each, in order: plain messages from other users above the
// read marker are unread, those that mention the user are mentions, edits and deletions count
// as nothing, and a message of the user's own moves the marker to it (the server does the same).
// Where that cannot be exact (a message arrives after a gap in seqs; the marker moves to
// somewhere below the object's last_seq, which leaves unknown how many of its counted messages
// remain above it) the session fetches the room object again (GET /api/rooms/{room}).
//
// [Session.MarkRead] moves the marker forward at once in the session ([EventRead],
// [EventUnread]) and tells the server with a read frame, at most one per room per second,
// coalesced to the highest seq. The server sends the new marker to every socket of the user;
// any session of the user that receives it moves its marker and clears its counts likewise.
//
// # Edits and deletions
//
// [Session.Edit] and [Session.Delete] go through the outbox as sends do: idempotent by id,
// resent until acked, failed on not_allowed or invalid_target. The session holds no list of
// messages: an edit or deletion reaches subscribers as an [EventMessage] of its own seq with
// Message.Kind (proto.KindEdit, proto.KindDelete) and Message.Target set, once, in order, and
// the app applies it to the message it shows or caches. History pages ([Session.Messages])
// come with edits and deletions already applied to their targets.
//
// # Connection state and liveness
//
// The state is connected, reconnecting or offline ([Session.State], [EventState]). Every
// [Options.PingEvery] (5 s) the session checks that its socket answers within four fifths of
// that, and drops a socket that does not, so a network that went away shows "reconnecting"
// within 10 s. Natively the check is a WebSocket ping (websocket.Conn.Ping). In the browser,
// where a WebSocket cannot ping, it is a leave of a room with a random name, which the server
// answers with a not_joined error that the session ignores. The app also reports the browser's
// offline and online events ([Session.Offline], [Session.Online]) and wake-ups
// ([Session.CheckNow]).
//
// Failed attempts back off: the ceiling doubles from 500 ms to [Options.MaxBackoff] (20 s) and
// each wait is between half the ceiling and all of it. The backoff starts over only once a
// socket has stayed open [Options.StableAfter] (10 s) or delivered an ack, so a server that
// drops every socket right after its hello sees no reconnect storm.
package client
