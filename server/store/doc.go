// Package store keeps Kaiwa's users, sessions, rooms and message history in one bbolt file. It is
// the one place that knows the file's bucket names and value encodings.
//
// Layout (top-level buckets):
//
//	meta        "schema" → uint64 schema version; "signing_key" → HMAC key for access tokens;
//	            "dm_key" → HMAC key that names dm rooms
//	users       user id → JSON user
//	usernames   username → user id
//	sessions    session id → JSON session (refresh token hashes, rotation state)
//	rooms       room name → bucket { "info" → JSON room (name, created_at, kind, creator),
//	            "head" → the same in binary (kind, created_at, creator, name),
//	            "last_ts" → unix ms of the newest message,
//	            msgs: seq (8-byte big-endian) → JSON record (the message frame without "type"),
//	            ids: user id + 0x00 + client id → seq,
//	            members: user id → read marker (8 bytes) + name,
//	            edits: seq of an edit or deletion → running count of edits and deletions,
//	            applied: seq of a plain message → JSON of its latest edit or its deletion }
//	memberships user id + 0x00 + room → nil (a user's rooms)
//	mentions    user id + 0x00 + room + 0x00 + seq → nil, until the user's marker passes seq
//	public      room name → nil (the public rooms)
//	certs     TLS material (certs.go): "self/ca", "self/leaf" → PEM certificate and key;
//	          "acme/" + name → the ACME client's cache (created by the first write)
//
// Authorization of rooms lives here, in the transaction that reads or writes: CanRead (and
// every method taking a user id and a room) answers ErrNotFound for a private or dm room the
// user is not a member of, exactly as for a missing room. Unread counts cost a few lookups per
// room whatever the history (see view in members.go).
//
// Every method is safe for concurrent use. Values returned are copies: nothing refers to memory
// of a finished transaction.
package store
