// Package hub runs Kaiwa's realtime side: WebSocket connections, rooms, presence, typing and
// the durable fan-out of messages.
//
// One committer goroutine takes the sends of every connection and stores them in batches (one
// fsync for many messages, in arrival order). The hub is the store's Observer: every effect of
// a stored change on open sockets comes from the store once it has committed the change, not
// from whoever asked for it, so that a cluster node, whose store applies the changes of every
// node, tells its sockets of them all. Appended acks each sender whose send is waiting in this
// hub and publishes each new message through the Broker; the committer answers only the sends
// the store refused, and a batch the store cannot write (a full disk) `unavailable`, send by
// send; the sockets stay open and /healthz reports the failure until a commit succeeds. Read
// markers (ReadMoved), membership changes (MembershipChanged), deleted rooms (RoomDeleted) and
// revoked sessions (SessionsRevoked) come the same way.
//
// Rooms fan published messages out to their members' outboxes without ever blocking. A member
// whose outbox is past its soft limit falls behind: it stops being live, and a replay feeds it
// the room's messages from the store as its socket drains, then turns it live again. A join
// with "after" starts the same way. The switch to live happens under the room's lock against
// the room's last published seq, so a member sees every seq once, in order, with no gap. Only
// a client that stops reading altogether is closed with 4008: its pinger sees frames waiting
// and nothing written since the last tick.
//
// Presence is coalesced per room: at most one frame a second, and an outbox holds at most the
// newest unsent presence frame of each room. A room lives in memory while it has members.
//
// Conversations (SPEC §7). The store is the one authority on who may read a room: a join asks
// it (store.CanRead) and a send, edit or deletion is authorized by AppendBatch in the commit's
// own transaction, so a private or dm room answers a non-member `invalid_room` exactly as a room
// never created. Edits and deletions are messages of their own and take the sends' path
// through the committer, which reads their target in the same transaction; the store's refusals
// become `invalid_room`, `invalid_target` or `not_allowed`, send by send. Mentions are computed
// by the store at append, and a stored message is its live frame without the type, so a replay
// sends the same bytes. The hub indexes open sockets by user: a read frame moves the stored
// marker and is echoed to every socket of the user, all sessions; a stored message moves its
// sender's marker, which the sender's other sockets learn from a read frame (the sending one has
// its ack). Membership changes (MembershipChanged) send each socket of the users concerned a
// room frame as its user sees the room; a user who may no longer read a room is taken out of it
// on every socket. A join to a private room checks again once joined, so a removal racing it
// cannot leave a socket in the room.
//
// Lock order: Hub.mu, then room.mu, then outbox.mu. Closing a connection never happens while
// holding a room's lock: it is handed to a goroutine. A room's subscription is ended outside
// its lock (the broker holds its own while delivering).
package hub
