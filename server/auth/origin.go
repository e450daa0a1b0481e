package auth

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Origins decides which browser origins may use the WebSocket and /api/auth/*: the page's own
// scheme and host, plus exact extra origins such as "https://chat.example.com".
type Origins struct {
	extra     []string
	assumeTLS bool
}

// NewOrigins returns the policy with the given extra origins (scheme://host[:port]). assumeTLS
// says the server is reached over HTTPS even when a request shows no sign of it (a TLS proxy
// that sets no X-Forwarded-Proto, with -secure-cookies always).
func NewOrigins(extra []string, assumeTLS bool) Origins {
	o := Origins{assumeTLS: assumeTLS}
	for _, e := range extra {
		if e = strings.TrimRight(strings.TrimSpace(e), "/"); e != "" {
			o.extra = append(o.extra, strings.ToLower(e))
		}
	}
	return o
}

// Allowed reports whether r may proceed: no Origin header (not a browser), the same scheme and
// host as the request, or one of the extra origins. The same host over another scheme is
// another origin: a page on http://host must not act on https://host.
func (o Origins) Allowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) && strings.EqualFold(u.Scheme, o.scheme(r)) {
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

// scheme is the scheme the client used to reach the server: https over TLS; behind a proxy,
// what its X-Forwarded-Proto says (a browser cannot set that header on a cross-origin request
// without a preflight Kaiwa never grants, nor on a WebSocket); else https when assumed.
func (o Origins) scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if fwd := r.Header.Get("X-Forwarded-Proto"); fwd != "" {
		proto, _, _ := strings.Cut(fwd, ",")
		return strings.ToLower(strings.TrimSpace(proto))
	}
	if o.assumeTLS {
		return "https"
	}
	return "http"
}

// ClientIP is the address the request came from. Kaiwa trusts no forwarding header for it.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
