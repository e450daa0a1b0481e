//go:build !(js && wasm)

package app

import (
	"context"

	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// refresh trades the refresh cookie for a new token. Outside the browser there are no other
// tabs to wait for.
func refresh(ctx context.Context, api *client.API) (proto.TokenBody, error) {
	return api.Refresh(ctx)
}
