// Package connlimit caps the TCP connections a server holds open: per client IP, so that one
// address cannot take the connections every other client needs, and in total, below the
// process's open-file limit, so that the database, the logs and the listener itself always find
// a file descriptor.
//
// The caps apply at accept, before a byte is read: a connection over a cap is closed at once and
// never reaches the HTTP server. They count every connection the server holds, whatever it
// carries: a request being read, an idle keep-alive, or a WebSocket after the upgrade.
package connlimit

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Config sets the caps. The zero value caps nothing.
type Config struct {
	// PerIP is the most connections one client IP may hold open at once; 0 means no limit.
	PerIP int
	// Total is the most connections held open at once; 0 means no limit.
	Total int
	// Newcomers is how many connections beyond Total newcomers may open: while a few addresses
	// fill Total, a health check or a first visit from elsewhere still gets in.
	Newcomers int
	// NewcomerConns is how many connections an address may hold and still count as a newcomer.
	// A client that has just had its answer may still be held for a moment (the HTTP server
	// lingers before it closes), so this is more than 1.
	NewcomerConns int
}

// Reasons a connection is refused, as Refused reports them and the log spells them.
const (
	ReasonPerIP = "per_ip"
	ReasonTotal = "total"
)

// logEvery is how often, at most, refused connections are logged: a flood must not flood the log.
const logEvery = time.Minute

// Limiter counts the connections open through its listeners and refuses those over its caps.
// One Limiter may wrap several listeners; its caps then hold across them. Its methods are safe
// for concurrent use.
type Limiter struct {
	cfg Config
	log *slog.Logger

	mu           sync.Mutex
	open         int
	perIP        map[netip.Addr]int
	refusedPerIP uint64
	refusedTotal uint64
	unlogged     uint64    // refusals since the last log line
	loggedAt     time.Time // when the last log line was written
}

// New returns a Limiter with the caps of cfg that logs refusals to log, at most once a minute.
func New(cfg Config, log *slog.Logger) *Limiter {
	return &Limiter{cfg: cfg, log: log, perIP: make(map[netip.Addr]int)}
}

// Listener returns ln with the caps applied: its Accept returns only connections within them,
// and closing such a connection frees its place.
func (l *Limiter) Listener(ln net.Listener) net.Listener {
	return &listener{Listener: ln, lim: l}
}

// Open returns the number of connections open through the Limiter's listeners.
func (l *Limiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Refused returns how many connections have been closed at accept since the Limiter was made,
// for the given reason (ReasonPerIP or ReasonTotal).
func (l *Limiter) Refused(reason string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch reason {
	case ReasonPerIP:
		return l.refusedPerIP
	case ReasonTotal:
		return l.refusedTotal
	}
	return 0
}

// admit takes a place for a connection from ip, or says why there is none. An invalid ip (not
// a TCP peer) is subject to the total cap only.
func (l *Limiter) admit(ip netip.Addr) (reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	held := l.perIP[ip]
	switch {
	case l.cfg.PerIP > 0 && ip.IsValid() && held >= l.cfg.PerIP:
		reason = ReasonPerIP
		l.refusedPerIP++
	case l.cfg.Total > 0 && l.open >= l.cfg.Total &&
		(!ip.IsValid() || held >= l.cfg.NewcomerConns || l.open >= l.cfg.Total+l.cfg.Newcomers):
		reason = ReasonTotal
		l.refusedTotal++
	default:
		l.open++
		if ip.IsValid() {
			l.perIP[ip]++
		}
		return ""
	}
	l.unlogged++
	if now := time.Now(); now.Sub(l.loggedAt) >= logEvery {
		l.log.Warn("connections_refused", slog.String("reason", reason), slog.String("ip", ip.String()),
			slog.Uint64("refused", l.unlogged), slog.Int("open", l.open),
			slog.Int("limit_per_ip", l.cfg.PerIP), slog.Int("limit_total", l.cfg.Total))
		l.unlogged, l.loggedAt = 0, now
	}
	return reason
}

// release gives back the place admit took for ip.
func (l *Limiter) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if ip.IsValid() {
		if n := l.perIP[ip] - 1; n > 0 {
			l.perIP[ip] = n
		} else {
			delete(l.perIP, ip)
		}
	}
}

type listener struct {
	net.Listener
	lim *Limiter
}

// Accept returns the next connection within the caps. Connections over a cap are closed here
// and never returned; errors of the wrapped listener are returned as they are, so that the HTTP
// server's back-off on a temporary error (such as EMFILE) still applies.
func (ln *listener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := peerIP(c)
		if ln.lim.admit(ip) != "" {
			c.Close()
			continue
		}
		if tcp, ok := c.(*net.TCPConn); ok {
			return &tcpConn{TCPConn: tcp, place: place{lim: ln.lim, ip: ip}}, nil
		}
		return &otherConn{Conn: c, place: place{lim: ln.lim, ip: ip}}, nil
	}
}

// peerIP is the IP address of c's peer; invalid when c is not TCP.
func peerIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// place is an admitted connection's place in the counts; free gives it back once.
type place struct {
	lim  *Limiter
	ip   netip.Addr
	once sync.Once
}

func (p *place) free() { p.once.Do(func() { p.lim.release(p.ip) }) }

// tcpConn is an admitted TCP connection. It keeps every method of *net.TCPConn (CloseWrite,
// SetWriteBuffer, ReadFrom for sendfile...), so that code asking for one by interface finds it;
// code that asserts the type *net.TCPConn does not.
type tcpConn struct {
	*net.TCPConn
	place
}

// Close closes the connection; the first Close frees its place.
func (c *tcpConn) Close() error {
	err := c.TCPConn.Close()
	c.free()
	return err
}

// otherConn is an admitted connection that is not TCP.
type otherConn struct {
	net.Conn
	place
}

// Close closes the connection; the first Close frees its place.
func (c *otherConn) Close() error {
	err := c.Conn.Close()
	c.free()
	return err
}

// Reserve is how many file descriptors ForFileLimit keeps from connections: the database file
// and a backup's second handle on it, the listener, the network poller, the standard streams,
// and room to spare.
const Reserve = 64

// Newcomers and NewcomerConns are the Config fields of those names that ForFileLimit sets:
// room for 64 connections beyond the total, for addresses that hold fewer than 8 (a browser
// opens up to 6 to one host).
const (
	Newcomers     = 64
	NewcomerConns = 8
)

// ForFileLimit returns the caps for a process that may open fileLimit files, with perIP
// connections per address: Total and Newcomers together leave Reserve descriptors free, and
// Total is never less than half of fileLimit. A fileLimit of 0 (unknown) means no total cap.
func ForFileLimit(perIP, fileLimit int) Config {
	if fileLimit <= 0 {
		return Config{PerIP: perIP}
	}
	total := max(fileLimit-Reserve-Newcomers, fileLimit/2)
	return Config{PerIP: perIP, Total: total, Newcomers: min(Newcomers, (fileLimit-total)/2), NewcomerConns: NewcomerConns}
}

// PerIP returns the cap per client IP; 0 means none.
func (l *Limiter) PerIP() int { return l.cfg.PerIP }

// Total returns the total cap, and the newcomers' room beyond it; 0 means no total cap.
func (l *Limiter) Total() (total, newcomers int) { return l.cfg.Total, l.cfg.Newcomers }
