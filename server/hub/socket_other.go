//go:build !unix

package hub

import "net"

// newIdleReader reports false: only Unix has the poller's wait for a readable socket without a
// read, and elsewhere a socket holds its read buffer while it waits.
func newIdleReader(c net.Conn) (net.Conn, bool) { return nil, false }
