package auth

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Origins decides which browser origins may use the WebSocket and /api/auth/*: the page's own
// host, plus exact extra origins such as "https://chat.example.com".
type Origins struct {
	extra []string
}

// NewOrigins returns the policy with the given extra origins (scheme://host[:port]).
func NewOrigins(extra []string) Origins {
	var o Origins
	for _, e := range extra {
		if e = strings.TrimRight(strings.TrimSpace(e), "/"); e != "" {
			o.extra = append(o.extra, strings.ToLower(e))
		}
	}
	return o
}

// Allowed reports whether r may proceed: no Origin header (not a browser), the same host as
// the request, or one of the extra origins.
func (o Origins) Allowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	origin = strings.ToLower(origin)
	for _, e := range o.extra {
		if origin == e {
			return true
		}
	}
	return false
}

// ClientIP is the address the request came from. Kaiwa trusts no forwarding header for it.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
