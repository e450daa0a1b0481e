// Package auth signs users in and keeps them signed in: argon2id password hashes, short-lived
// JWT access tokens (HS256, one algorithm, key kept in the store), and refresh sessions whose
// opaque tokens rotate on every use and are stored only as hashes.
//
// Refresh reuse: presenting a token that was already rotated away revokes its whole session,
// except within RefreshGrace of its rotation, when it yields a new sibling token, so two tabs
// refreshing at once both stay signed in.
package auth
