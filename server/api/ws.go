package api

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"kaiwa/server/auth"
	"kaiwa/server/hub"
	"kaiwa/shared/proto"
)

// websocket checks what must be refused before the upgrade (origin, subprotocol, sockets per
// IP; the hub checks sockets per user) and hands the request to the hub. The token travels in the Sec-WebSocket-Protocol offer
// because a browser cannot set Authorization on a WebSocket; it is never echoed or logged.
func (a *API) websocket(w http.ResponseWriter, r *http.Request) {
	if !a.cfg.Origins.Allowed(r) {
		a.writeError(w, r, errorf(http.StatusForbidden, proto.CodeForbiddenOrigin, "WebSockets from this origin are not allowed."))
		return
	}
	offered := subprotocols(r)
	if !slices.Contains(offered, proto.Subprotocol) {
		a.writeError(w, r, errorf(http.StatusBadRequest, proto.CodeBadRequest, "Offer the subprotocol "+proto.Subprotocol+"."))
		return
	}
	var token string
	for _, p := range offered {
		if t, ok := strings.CutPrefix(p, proto.BearerProtocol); ok {
			token = t
		}
	}
	release, err := a.cfg.Hub.Admit(auth.ClientIP(r))
	switch {
	case errors.Is(err, hub.ErrTooManyConns):
		a.writeError(w, r, errorf(http.StatusTooManyRequests, proto.CodeTooManyConnections, "Too many open sockets from this address."))
		return
	case err != nil:
		a.writeError(w, r, errorf(http.StatusServiceUnavailable, proto.CodeUnavailable, "The server is shutting down."))
		return
	}
	if err := a.cfg.Hub.Serve(w, r, token, release); errors.Is(err, hub.ErrTooManyUserConns) {
		a.writeError(w, r, errorf(http.StatusTooManyRequests, proto.CodeTooManyConnections, "Too many open sockets of this user."))
	}
}

// subprotocols lists the offered subprotocols; the header may repeat and holds comma-separated
// tokens.
func subprotocols(r *http.Request) []string {
	var out []string
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
