package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"kaiwa/server/auth"
	"kaiwa/server/metrics"
	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

// Errors of Admit and Serve.
var (
	ErrTooManyConns     = errors.New("hub: too many open sockets from this address")
	ErrTooManyUserConns = errors.New("hub: too many open sockets of this user")
	ErrClosing          = errors.New("hub: shutting down")
)

// Config sets the hub's limits.
type Config struct {
	// IPConnLimit caps open sockets per client IP; 0 means no limit.
	IPConnLimit int
	// UserConnLimit caps open sockets per user; 0 means no limit.
	UserConnLimit int
	// Broker carries room events; nil means a LocalBroker.
	Broker Broker
	// Presence carries the online users of rooms between nodes; nil means a node of a
	// LocalPresence of its own, alone.
	Presence Presence
	// PresenceRefresh is how often this node publishes again its online users of a room;
	// another node's not refreshed within three periods are dropped. 0 means
	// DefaultPresenceRefresh.
	PresenceRefresh time.Duration
	// Metrics receives the hub's counts; nil means a set of its own that nobody serves.
	Metrics *metrics.Metrics
}

// appendBatchMax bounds how many sends one commit takes.
const appendBatchMax = 1024

// commitLogEvery is the least time between two log lines about failing commits.
const commitLogEvery = 10 * time.Second

// Hub owns every open socket and room of the process. It is safe for concurrent use.
//
// It is the store's Observer (store.Store.SetObserver): every effect of a stored change on open
// sockets (acks, messages, read and room frames, revoked sessions, deleted rooms) comes from the
// store applying the change, whoever asked for it, so that a cluster node tells its sockets of
// the changes made on every node.
type Hub struct {
	cfg      Config
	st       store.Engine
	auth     *auth.Auth
	log      *slog.Logger
	broker   Broker
	presence Presence
	met      *metrics.Metrics

	appends   chan appendReq
	stop      chan struct{} // closed when the committer should finish
	committed chan struct{} // closed when the committer has finished
	conns     sync.WaitGroup
	// storageFailing is set while commits fail (a full disk, an I/O error), cleared by the next
	// commit that succeeds.
	storageFailing atomic.Bool
	// Guarded by pendingMu: when failing commits were last logged, and how many failed since.
	failLoggedAt  time.Time
	failsUnlogged int

	// pending holds the sends of the batch being committed, by sender, room and client id, in
	// arrival order: Appended acks them, the committer answers those it left.
	pendingMu sync.Mutex
	pending   map[sendKey][]*conn
	taken     time.Time // when the committer took the batch in pending

	mu       sync.Mutex
	closing  bool
	rooms    map[string]*room
	sessions map[string]map[*conn]struct{} // session id → its sockets
	byUser   map[string]map[*conn]struct{} // user id → their sockets, all sessions
	ips      map[string]int                // client IP → open sockets
	users    map[string]int                // user id → open sockets
}

var _ store.Observer = (*Hub)(nil)

// appendReq is a send on its way to the committer.
type appendReq struct {
	c      *conn
	req    store.AppendRequest
	queued time.Time // when it was handed to the committer
}

// sendKey names a send as the store names a message: its sender, room and client id.
type sendKey struct{ user, room, id string }

// New returns a running hub. The caller makes it the Observer of the store below st.
func New(cfg Config, st store.Engine, a *auth.Auth, log *slog.Logger) *Hub {
	if cfg.Broker == nil {
		cfg.Broker = NewLocalBroker()
	}
	if cfg.Presence == nil {
		cfg.Presence = NewLocalPresence().Node("local")
	}
	if cfg.PresenceRefresh <= 0 {
		cfg.PresenceRefresh = DefaultPresenceRefresh
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	h := &Hub{
		cfg: cfg, st: st, auth: a, log: log, broker: cfg.Broker, presence: cfg.Presence, met: cfg.Metrics,
		appends: make(chan appendReq, appendBatchMax), stop: make(chan struct{}), committed: make(chan struct{}),
		rooms: map[string]*room{}, sessions: map[string]map[*conn]struct{}{}, ips: map[string]int{},
		users: map[string]int{}, byUser: map[string]map[*conn]struct{}{}, pending: map[sendKey][]*conn{},
	}
	go h.commit()
	return h
}

// Admit reserves a socket for the client IP before the upgrade. The caller must call release
// once the socket is done, or at once if it never opens.
func (h *Hub) Admit(ip string) (release func(), err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return nil, ErrClosing
	}
	if h.cfg.IPConnLimit > 0 && h.ips[ip] >= h.cfg.IPConnLimit {
		return nil, ErrTooManyConns
	}
	h.ips[ip]++
	h.conns.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			if h.ips[ip]--; h.ips[ip] <= 0 {
				delete(h.ips, ip)
			}
			h.mu.Unlock()
			h.conns.Done()
		})
	}, nil
}

// Serve upgrades r to a WebSocket selecting exactly proto.Subprotocol, authenticates token and
// hands the connection to a goroutine of its own, returning at once: net/http's goroutine and
// its per-request state go away, and the socket's reader starts with a small stack. The caller
// has checked the origin, that the client offered proto.Subprotocol, and has admitted the
// client (release is called when the socket is done).
//
// A valid token whose user already has UserConnLimit open sockets is refused before the
// upgrade with ErrTooManyUserConns: nothing is written, and the caller answers. An invalid
// token completes the upgrade and is closed, as the protocol says.
func (h *Hub) Serve(w http.ResponseWriter, r *http.Request, token string, release func()) error {
	claims, verr := h.auth.VerifyToken(token)
	if verr == nil {
		userRelease, err := h.admitUser(claims.Subject)
		if err != nil {
			release()
			return err
		}
		ipRelease := release
		release = func() { userRelease(); ipRelease() }
	}
	// The caller has taken the token from the offer, and checked that proto.Subprotocol is in
	// it: offering that alone, the upgrade selects it without keeping a piece of the header,
	// which would keep the whole header, token and all, for the socket's life.
	r.Header.Set("Sec-WebSocket-Protocol", proto.Subprotocol)
	capture := &hijackCapture{ResponseWriter: w}
	ws, err := websocket.Accept(capture, r, &websocket.AcceptOptions{
		Subprotocols:       []string{proto.Subprotocol},
		InsecureSkipVerify: true, // the origin was checked by the caller, against Kaiwa's own policy
	})
	if err != nil {
		release()
		return nil // Accept has answered
	}
	ws.SetReadLimit(proto.MaxClientFrame)
	c := newConn(h, ws, capture.conn)
	if verr != nil {
		h.met.TokenFailures.Inc()
		code, reason := websocket.StatusCode(proto.CloseUnauthorized), "unauthorized"
		if errors.Is(verr, auth.ErrTokenExpired) {
			code, reason = proto.CloseTokenExpired, "token expired"
		}
		c.close(code, reason)
		release()
		return nil
	}
	c.user = proto.User{ID: claims.Subject, Name: claims.Name}
	c.sid = claims.SID
	if !h.track(c) {
		c.close(proto.CloseGoingAway, "server shutting down")
		release()
		return nil
	}
	// Checked after tracking, so a revocation cannot slip in between.
	if !h.auth.SessionLive(c.sid) {
		h.untrack(c)
		c.close(proto.CloseRevoked, "session revoked")
		release()
		return nil
	}
	if u, err := h.st.UserByID(c.user.ID); err == nil {
		c.user.Admin = u.Admin
	}
	go h.run(c, claims.ExpiresAt.Time, release)
	return nil
}

// admitUser reserves a socket for the user, or refuses with ErrTooManyUserConns.
func (h *Hub) admitUser(userID string) (release func(), err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cfg.UserConnLimit > 0 && h.users[userID] >= h.cfg.UserConnLimit {
		return nil, ErrTooManyUserConns
	}
	h.users[userID]++
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			if h.users[userID]--; h.users[userID] <= 0 {
				delete(h.users, userID)
			}
			h.mu.Unlock()
		})
	}, nil
}

// run serves an authenticated socket until it ends.
func (h *Hub) run(c *conn, exp time.Time, release func()) {
	defer release()
	defer h.untrack(c)
	defer c.cancel()
	expiry := time.AfterFunc(time.Until(exp), func() { c.close(proto.CloseTokenExpired, "token expired") })
	defer expiry.Stop()
	c.send(encode(proto.Hello{Type: proto.TypeHello, User: c.user, Session: c.sid, ExpiresAt: exp.UTC()}))
	c.startPings()
	defer c.pinger.Stop()
	c.readLoop()
	for _, rm := range c.joined {
		if _, empty := rm.leave(c); empty {
			h.release(rm)
		}
	}
}

// SessionsRevoked closes every socket of the sessions with 4003 (store.Observer).
func (h *Hub) SessionsRevoked(sessionIDs []string) {
	h.mu.Lock()
	var victims []*conn
	for _, sid := range sessionIDs {
		for c := range h.sessions[sid] {
			victims = append(victims, c)
		}
	}
	h.mu.Unlock()
	for _, c := range victims {
		c.close(proto.CloseRevoked, "session revoked")
	}
}

// Close closes every socket with 1001, refuses new ones, lets the commits in flight finish
// and stops the committer. It returns when all of that is done or ctx ends.
func (h *Hub) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		return nil
	}
	h.closing = true
	var all []*conn
	for _, set := range h.sessions {
		for c := range set {
			all = append(all, c)
		}
	}
	h.mu.Unlock()
	for _, c := range all {
		c.close(proto.CloseGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() { h.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	close(h.stop)
	select {
	case <-h.committed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("hub: close: %w", ctx.Err())
	}
}

// track records c under its session, so that Revoke and Close find it. It refuses once the hub
// is closing: Close has already gone through the sockets it knows.
func (h *Hub) track(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	if h.sessions[c.sid] == nil {
		h.sessions[c.sid] = map[*conn]struct{}{}
	}
	h.sessions[c.sid][c] = struct{}{}
	if h.byUser[c.user.ID] == nil {
		h.byUser[c.user.ID] = map[*conn]struct{}{}
	}
	h.byUser[c.user.ID][c] = struct{}{}
	h.met.Connections.Inc()
	return true
}

func (h *Hub) untrack(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.sessions[c.sid], c)
	h.met.Connections.Dec()
	if len(h.sessions[c.sid]) == 0 {
		delete(h.sessions, c.sid)
	}
	delete(h.byUser[c.user.ID], c)
	if len(h.byUser[c.user.ID]) == 0 {
		delete(h.byUser, c.user.ID)
	}
}

// userConns returns the open sockets of a user, all sessions.
func (h *Hub) userConns(userID string) []*conn { return h.otherConns(userID, nil) }

// otherConns returns the open sockets of a user but except, all sessions; nil, without
// allocating, when there are none: the committer asks for every message it stores.
func (h *Hub) otherConns(userID string, except *conn) []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.byUser[userID]
	if _, in := set[except]; len(set) == 0 || len(set) == 1 && in {
		return nil
	}
	conns := make([]*conn, 0, len(set))
	for c := range set {
		if c != except {
			conns = append(conns, c)
		}
	}
	return conns
}

// room returns the live state of a stored room, loading it if need be, or store.ErrNotFound.
func (h *Hub) room(name string) (*room, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.rooms[name]; r != nil {
		return r, nil
	}
	r := &room{name: name, h: h, members: map[*conn]*member{}, users: map[string]int{}, typingAt: map[string]time.Time{},
		remote: map[string]remoteSet{}}
	// Subscribed before the store is read: a message published in between is then either in
	// the stored last seq or delivered, never neither.
	unsubscribe := h.broker.Subscribe(name, r.deliver)
	stored, err := h.st.Room(name)
	if err != nil {
		unsubscribe()
		return nil, err
	}
	unsubscribePresence := h.presence.Subscribe(name, r.remotePresence)
	r.unsubscribe = func() { unsubscribe(); unsubscribePresence() }
	r.mu.Lock()
	r.refresher = time.AfterFunc(h.cfg.PresenceRefresh, r.refresh)
	r.lastSeq = max(r.lastSeq, stored.LastSeq)
	r.mu.Unlock()
	h.rooms[name] = r
	h.met.Rooms.Inc()
	return r, nil
}

// join makes c a member of the stored room, loading it if need be.
func (h *Hub) join(c *conn, name string, after *uint64) (*room, error) {
	for {
		r, err := h.room(name)
		if err != nil {
			return nil, err
		}
		if r.join(c, after) {
			return r, nil
		}
		// Dropped between the lookup and the join: load it again.
	}
}

// release drops r from memory if it has no members left: a room that nobody has joined costs
// nothing. Messages committed to it meanwhile are in the store, and the next join reads its
// last seq from there.
func (h *Hub) release(r *room) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rooms[r.name] != r || !r.drop(true) {
		return
	}
	delete(h.rooms, r.name)
	h.met.Rooms.Dec()
}

// RoomDeleted forgets a room the store no longer has: its members stop being members and get
// nothing more from it (store.Observer). The store has deleted it already, so that no join can
// load it again.
func (h *Hub) RoomDeleted(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[name]
	if r == nil {
		return
	}
	delete(h.rooms, name)
	h.met.Rooms.Dec()
	r.drop(false)
}

// StorageFailing reports whether the last commit failed: the disk is full or failing, and
// sends are answered `unavailable` until a commit succeeds again.
func (h *Hub) StorageFailing() bool { return h.storageFailing.Load() }

// enqueue hands a send to the committer; false when the hub is stopping or c is closed.
func (h *Hub) enqueue(c *conn, req store.AppendRequest) bool {
	now := time.Now()
	h.met.StageDecode.Observe(now.Sub(c.readAt).Seconds())
	select {
	case h.appends <- appendReq{c: c, req: req, queued: now}:
		return true
	case <-c.ctx.Done():
		return false
	case <-h.stop:
		return false
	}
}

// commit is the committer goroutine: it stores sends in batches, acks them and publishes the new
// messages, in order. It finishes the sends already queued when the hub stops.
func (h *Hub) commit() {
	defer close(h.committed)
	batch := make([]appendReq, 0, appendBatchMax)
	reqs := make([]store.AppendRequest, 0, appendBatchMax)
	for {
		select {
		case a := <-h.appends:
			batch = h.takeQueued(append(batch[:0], a))
			h.commitBatch(batch, reqs[:0])
		case <-h.stop:
			for {
				if batch = h.takeQueued(batch[:0]); len(batch) == 0 {
					return
				}
				h.commitBatch(batch, reqs[:0])
			}
		}
	}
}

// takeQueued adds the sends already waiting to batch, up to appendBatchMax, without waiting
// for more: one commit takes whatever piled up during the one before.
func (h *Hub) takeQueued(batch []appendReq) []appendReq {
	for len(batch) < appendBatchMax {
		select {
		case a := <-h.appends:
			batch = append(batch, a)
		default:
			return batch
		}
	}
	return batch
}

// commitBatch stores a batch. The store's Observer call (Appended) acks the sends and
// publishes the new messages before AppendBatch returns; what is left here is to answer the
// sends it refused, or all of them when the batch could not be stored.
func (h *Hub) commitBatch(batch []appendReq, reqs []store.AppendRequest) {
	taken := time.Now()
	h.pendingMu.Lock()
	h.taken = taken
	for _, a := range batch {
		h.met.StageQueue.Observe(taken.Sub(a.queued).Seconds())
		reqs = append(reqs, a.req)
		k := sendKey{a.req.UserID, a.req.Room, a.req.ClientID}
		h.pending[k] = append(h.pending[k], a.c)
	}
	h.pendingMu.Unlock()
	start := time.Now()
	results, err := h.st.AppendBatch(reqs)
	took := time.Since(start)
	h.pendingMu.Lock()
	defer h.pendingMu.Unlock()
	defer clear(h.pending)
	if err != nil {
		h.commitFailed(len(batch), err)
		for _, a := range batch {
			if h.unpend(a) {
				a.c.sendError(proto.CodeUnavailable, "The message could not be stored; retry later.", a.req.ClientID)
			}
		}
		return
	}
	h.commitRecovered()
	stored := 0
	for i, a := range batch {
		switch res := results[i]; {
		case res.Err != nil:
			if h.unpend(a) {
				code, message := refusal(res.Err)
				a.c.sendError(code, message, a.req.ClientID)
			}
		case !res.Dup:
			stored++
		}
	}
	h.met.ObserveCommit(took, stored)
}

// unpend takes a's socket out of pending and reports whether it was there: not yet answered.
// Callers hold pendingMu.
func (h *Hub) unpend(a appendReq) bool {
	k := sendKey{a.req.UserID, a.req.Room, a.req.ClientID}
	conns := h.pending[k]
	i := slices.Index(conns, a.c)
	if i < 0 {
		return false
	}
	if conns = slices.Delete(conns, i, i+1); len(conns) == 0 {
		delete(h.pending, k)
	} else {
		h.pending[k] = conns
	}
	return true
}

// Appended acks and publishes the messages of a committed batch (store.Observer), in order. A
// message sent through this hub acks its sender, whose other sockets get a read frame for the
// marker the message moved; one from elsewhere (another node of a cluster) gives all the
// sender's sockets that read frame. Refusals are the committer's to answer.
func (h *Hub) Appended(results []store.AppendResult) {
	senders := make([]*conn, len(results))
	durable := time.Now()
	local := false
	h.pendingMu.Lock()
	for i, res := range results {
		if res.Err != nil {
			continue
		}
		k := sendKey{res.UserID, res.Msg.Room, res.Msg.ID}
		if conns := h.pending[k]; len(conns) > 0 {
			senders[i], local = conns[0], true
			if len(conns) == 1 {
				delete(h.pending, k)
			} else {
				h.pending[k] = conns[1:]
			}
		}
	}
	if local {
		// Before anyone is acked: a sender told its message is stored finds /healthz well.
		h.commitRecovered()
	}
	taken := h.taken
	h.pendingMu.Unlock()
	if local {
		h.met.StageCommit.Observe(durable.Sub(taken).Seconds())
	}
	// Every message of the commit is queued before any member's writer starts: one write per
	// member per commit.
	starts := &writerStarts{}
	defer starts.start()
	for i, res := range results {
		if res.Err != nil {
			continue
		}
		sender := senders[i]
		if sender != nil {
			sender.send(encode(proto.Ack{Type: proto.TypeAck, Room: res.Msg.Room, ID: res.Msg.ID, Seq: res.Msg.Seq}))
		}
		if res.Dup {
			continue
		}
		msg := res.Msg
		msg.Type = proto.TypeMessage
		h.broker.Publish(msg.Room, Event{Kind: EventMessage, Seq: msg.Seq, Frame: encode(msg), starts: starts})
		h.met.StageFanout.Observe(time.Since(durable).Seconds())
		// The store moved the sender's marker to the message: their other sockets learn it as
		// from a read frame; the sending one has its ack.
		if others := h.otherConns(res.UserID, sender); len(others) > 0 {
			frame := encode(proto.Read{Type: proto.TypeRead, Room: msg.Room, Seq: res.Read})
			for _, c := range others {
				c.send(frame)
			}
		}
		if res.Joined {
			go h.MembershipChanged(msg.Room, []string{res.UserID})
		}
	}
}

// commitRecovered clears storageFailing after a commit that succeeded, and logs the recovery
// once. Callers hold pendingMu.
func (h *Hub) commitRecovered() {
	if h.storageFailing.Swap(false) {
		h.log.Info("commit_recovered", slog.Int("failed_since_last_log", h.failsUnlogged))
		h.failsUnlogged, h.failLoggedAt = 0, time.Time{}
	}
}

// commitFailed counts a failed commit of n sends and logs it, at most once per commitLogEvery
// with the number of failures since the last line: a full disk fails every commit, and the
// log is on that disk too, often. Callers hold pendingMu.
func (h *Hub) commitFailed(n int, err error) {
	h.storageFailing.Store(true)
	h.met.CommitFailures.Inc()
	h.failsUnlogged++
	if now := time.Now(); now.Sub(h.failLoggedAt) >= commitLogEvery {
		h.log.Error("commit_failed", slog.Int("messages", n), slog.Int("failed_commits", h.failsUnlogged), slog.Any("err", err))
		h.failLoggedAt, h.failsUnlogged = now, 0
	}
}
