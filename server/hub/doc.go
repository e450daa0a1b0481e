// Package hub runs Kaiwa's realtime side: WebSocket connections, rooms, presence, typing and
// the durable fan-out of messages.
//
// One committer goroutine takes the sends of every connection, stores them in batches (one
// fsync for many messages, in arrival order), acks each sender and publishes each new message
// through the Broker. Rooms fan published messages out to their members' outboxes without ever
// blocking: a member whose outbox is full is closed with 4008.
//
// A join with "after" first replays stored history, paced by the member's socket, and only then
// turns live; the switch happens under the room's lock against the room's last published seq,
// so the member sees every seq once, in order, with no gap.
//
// Lock order: Hub.mu, then room.mu, then outbox.mu. Closing a connection never happens while
// holding a room's lock: it is handed to a goroutine.
package hub
