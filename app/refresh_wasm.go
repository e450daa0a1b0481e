//go:build js && wasm

package app

import (
	"context"
	"syscall/js"

	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// refreshLock names the Web Lock that every tab of the origin takes around a refresh.
const refreshLock = "kaiwa.refresh"

// refresh trades the refresh cookie for a new token while holding a Web Lock shared by every
// tab of this origin, so that tabs rotate the cookie one after another and each presents the
// cookie its predecessor received. Without Web Locks it refreshes directly; the server's 10 s
// grace then covers two tabs that collide.
func refresh(ctx context.Context, api *client.API) (proto.TokenBody, error) {
	locks := js.Global().Get("navigator").Get("locks")
	if !locks.Truthy() {
		return api.Refresh(ctx)
	}
	// The lock is held until the promise the callback returns settles: held resolves when the
	// refresh is over.
	var resolve js.Value
	executor := js.FuncOf(func(this js.Value, args []js.Value) any {
		resolve = args[0]
		return nil
	})
	held := js.Global().Get("Promise").New(executor) // runs executor at once
	executor.Release()
	acquired := make(chan struct{})
	granted := js.FuncOf(func(this js.Value, args []js.Value) any {
		close(acquired)
		return held
	})
	locks.Call("request", refreshLock, granted)
	select {
	case <-acquired:
		granted.Release()
	case <-ctx.Done():
		// The lock may still be granted later: it is released at once since held is settled.
		// granted stays alive for that call.
		resolve.Invoke()
		return proto.TokenBody{}, ctx.Err()
	}
	defer resolve.Invoke()
	return api.Refresh(ctx)
}
