//go:build !js

package client

import "context"

// check pings the peer and waits for its pong.
func (sk *socket) check(ctx context.Context) error { return sk.ws.Ping(ctx) }
