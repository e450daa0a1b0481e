// Package api serves Kaiwa's HTTP API under /api/: accounts and tokens, rooms, history and the
// admin backup. Every error leaves through one writer in one shape, and no response may be
// cached.
package api
