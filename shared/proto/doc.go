// Package proto holds Kaiwa's wire types: the JSON bodies of the HTTP API and the frames of the
// WebSocket protocol, with the validation both sides share. It is the one place a field name is
// spelled. It uses the standard library only, so the browser build stays small.
//
// Server-to-client frames are encoded from one typed struct per frame type; every frame carries
// its "type". Receivers decode any frame into the flat [Frame], which has every field of every
// type.
package proto
