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
