// Package store keeps Kaiwa's users, sessions, rooms and message history in one bbolt file. It is
// the one place that knows the file's bucket names and value encodings.
//
// Layout (top-level buckets):
//
//	meta      "schema" → uint64 schema version; "signing_key" → HMAC key for access tokens
//	users     user id → JSON user
//	usernames username → user id
//	sessions  session id → JSON session (refresh token hashes, rotation state)
//	rooms     room name → bucket { "info" → JSON room, msgs: seq (8-byte big-endian) → JSON
//	          message, ids: user id + 0x00 + client id → seq }
//	certs     TLS material (certs.go): "self/ca", "self/leaf" → PEM certificate and key;
//	          "acme/" + name → the ACME client's cache (created by the first write)
//
// Every method is safe for concurrent use. Values returned are copies: nothing refers to memory
// of a finished transaction.
package store
