package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"kaiwa/shared/proto"
)

// ErrLoginRequired ends a session whose refresh token no longer works: the user must sign in.
var ErrLoginRequired = errors.New("kaiwa: login required")

// State is the session's connection state, as the app shows it.
type State string

// Connection states.
const (
	StateConnected    State = "connected"
	StateReconnecting State = "reconnecting"
	StateOffline      State = "offline"
)

// Pending is a send in the outbox (a message, an edit or a deletion): waiting for its ack, or
// failed.
type Pending struct {
	Room, ID, Text string
	// Kind is "" for a message, proto.KindEdit or proto.KindDelete for an edit or deletion of
	// the message at Target.
	Kind   string `json:",omitempty"`
	Target uint64 `json:",omitempty"`
	// Failed is set when the server refused the send for good (or the client knew it would):
	// it is no longer sent until Retry. Code is the refusal's error code, such as
	// "text_too_long", "invalid_room" or "not_joined".
	Failed bool   `json:",omitempty"`
	Code   string `json:",omitempty"`
}

// Options configure a Session. Zero values mean the defaults.
type Options struct {
	// Token is an access token from Login or Register. Without one the session starts with a
	// refresh (the cookie of an earlier sign-in).
	Token *proto.TokenBody
	// Rooms are the rooms to join from the start, each with the last seq seen in it: the
	// session asks for the messages above it. 0 means none seen: the room is joined from now
	// on (load its history with Messages).
	Rooms map[string]uint64
	// Outbox holds sends kept from an earlier session (see EventOutbox), oldest first. Pending
	// ones are sent again once their room is joined; failed ones wait for Retry or Discard.
	Outbox []Pending
	// MemberRooms, when set, makes the session list the user's rooms once its first socket
	// is open, and again after every reconnect (room frames may have been missed meanwhile):
	// the answer seeds RoomList and the unread counts, and every room the user is a member of
	// is joined, from its last_seq on when it is not one of Rooms. The server's join burst
	// (proto.JoinBurst) takes that many joins at once; the session joins the rest as the
	// server's rate allows.
	MemberRooms bool
	// Events, when set, receives every event as the channel of Events does. The session never
	// waits for it; events queue in memory until it is read.
	Events chan Event
	// MaxBackoff bounds the wait between failed connection attempts; default 20 s.
	MaxBackoff time.Duration
	// PingEvery is how often the session checks that its socket still answers; a socket that
	// does not answer within four fifths of it is dropped. Default 5 s, so a dead network
	// turns "connected" into "reconnecting" within 10 s.
	PingEvery time.Duration
	// StableAfter is how long a socket must stay open, or else deliver an ack, before the
	// backoff starts over; default 10 s. A server that accepts and then drops every socket
	// sees the backoff grow rather than a reconnect storm.
	StableAfter time.Duration
	// Refresh, when set, replaces API.Refresh for the session's refreshes: the browser app
	// wraps it in a lock shared by its tabs, so that one tab at a time rotates the cookie.
	Refresh func(ctx context.Context) (proto.TokenBody, error)
	// Logf, when set, receives diagnostics.
	Logf func(format string, args ...any)
}

// Session keeps a user connected: it refreshes the access token at about three quarters of its
// lifetime, opens a new socket and rejoins every room with after = the last seq seen before it
// closes the old one, reconnects with backoff after failures, and resends unacknowledged sends
// until they are acked. Messages reach subscribers once each, in seq order per room. It is the
// one holder of the access token: HTTP API calls go through it (Rooms, Messages, Call).
//
// Concurrency: Run runs the session and must be called once; it returns when its context
// ends or the user must sign in again. Every other method may be called concurrently, from
// any goroutine, before Run starts, while it runs and after it returned, and none of them
// waits for the session: Join, Leave, Send, Edit, Delete, MarkRead, Typing and the like are
// queued for Run (calls made before Run take effect when it starts; calls made after it
// returned do nothing), and Outbox, State, AccessToken, User, Unread, UnreadTotal and
// RoomList read a copy kept under a lock. The API calls (Rooms,
// Messages, Call, ...) block only on the network, bounded by their context. Network writes
// happen in a writer goroutine per socket, each with a deadline, so a slow socket stalls
// neither the session's timers nor its other socket.
type Session struct {
	api  *API
	opts Options
	wake chan struct{} // capacity 1: commands are queued

	mu      sync.Mutex
	cmds    []func() // queued for the Run goroutine
	stopped bool     // Run has returned: commands are dropped
	token   proto.TokenBody
	tokenAt time.Time // when token was received (monotonic clock)
	flight  *refreshFlight
	counts  map[string]*roomCount // room list and unread counts (rooms.go)
	outbox  []*pending
	state   State
	subs    []*Subscription
	legacy  *Subscription // the subscription behind Events
	// legacyUsed is set once Events was called or Options.Events given: until then the first
	// Subscribe drops the legacy subscription, so that nothing queues for nobody.
	legacyUsed bool

	// Owned by the Run goroutine.
	runCtx        context.Context
	loginRequired chan struct{}
	over          bool
	offline       bool    // told by Offline: no attempts until Online
	cur, next     *socket // the socket in use, and the one replacing it
	rooms         map[string]*roomState
	attempts      int // failed attempts in a row
	dialing       bool
	dialToken     string // the token of the socket being dialled or last dialled
	limiter       *rate.Limiter
	typedAt       map[string]time.Time
	marks         map[string]*readMark // read markers not yet confirmed by the server
	listing       bool                 // the room list is being fetched (MemberRooms)
	inbox         chan sockEvent
	refreshTimer  *time.Timer
	retryTimer    *time.Timer
}

type roomState struct {
	lastSeq uint64
	known   bool // lastSeq is meaningful: join with after
}

type pending struct {
	Pending
	// queued is set by the Run goroutine once it has taken the send in, after every call made
	// before it (Join first, then Send, is seen in that order).
	queued    bool
	sentOn    *socket   // the socket it was last sent on
	tries     int       // refusals for rate or storage in a row
	notBefore time.Time // when it may be sent again after such a refusal
}

// NewSession returns a session over api; start it with Run.
func NewSession(api *API, opts Options) *Session {
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 20 * time.Second
	}
	if opts.PingEvery <= 0 {
		opts.PingEvery = 5 * time.Second
	}
	if opts.StableAfter <= 0 {
		opts.StableAfter = 10 * time.Second
	}
	s := &Session{
		api: api, opts: opts, wake: make(chan struct{}, 1),
		rooms: map[string]*roomState{}, inbox: make(chan sockEvent, 64), typedAt: map[string]time.Time{},
		marks: map[string]*readMark{}, counts: map[string]*roomCount{},
		// Stay under the server's send rate, so that a draining outbox is not refused.
		limiter: rate.NewLimiter(rate.Limit(proto.SendRate)*3/4, proto.SendBurst*3/4),
		state:   StateReconnecting,
	}
	if opts.Token != nil {
		s.token = *opts.Token
		s.tokenAt = time.Now()
	}
	for room, seq := range opts.Rooms {
		if !proto.ValidRoomName(room) {
			s.do(func() { s.join(room, 0, false) }) // refused when Run starts
			continue
		}
		s.rooms[room] = &roomState{lastSeq: seq, known: seq > 0}
	}
	for _, p := range opts.Outbox {
		if !slices.ContainsFunc(s.outbox, func(q *pending) bool { return q.ID == p.ID }) {
			s.outbox = append(s.outbox, &pending{Pending: p, queued: true})
		}
	}
	s.legacy = newSubscription(s, Filter{}, opts.Events)
	s.legacyUsed = opts.Events != nil
	s.subs = []*Subscription{s.legacy}
	return s
}

// Subscribe returns a subscription to the events that match f. Events emitted before it are
// not delivered. After Run has returned, the subscription's channel is closed at once.
func (s *Session) Subscribe(f Filter) *Subscription {
	sub := newSubscription(s, f, nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.legacy != nil && !s.legacyUsed {
		s.legacy.end()
		s.subs = slices.DeleteFunc(s.subs, func(x *Subscription) bool { return x == s.legacy })
		s.legacy = nil
	}
	if s.stopped {
		sub.end()
		return sub
	}
	s.subs = append(s.subs, sub)
	return sub
}

// Events returns a channel of every event, never closed. The session never waits for it:
// events queue in memory until read. It predates Subscribe; use one or the other. A session
// whose Events was never called stops queueing for it at the first Subscribe.
func (s *Session) Events() <-chan Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.legacyUsed = true
	if s.legacy == nil {
		s.legacy = newSubscription(s, Filter{}, make(chan Event))
		if s.stopped {
			s.legacy.end()
		} else {
			s.subs = append(s.subs, s.legacy)
		}
	}
	return s.legacy.c
}

func (s *Session) unsubscribe(sub *Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = slices.DeleteFunc(s.subs, func(x *Subscription) bool { return x == sub })
}

// emit hands e to every subscription; it never blocks.
func (s *Session) emit(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.emitLocked(e)
}

func (s *Session) emitLocked(e Event) {
	for _, sub := range s.subs {
		sub.push(&e)
	}
}

// AccessToken returns the current access token. Prefer the session's API calls, which renew
// an expired token.
func (s *Session) AccessToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token.AccessToken
}

// User returns the signed-in user, once known.
func (s *Session) User() proto.User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token.User
}

// State returns the connection state.
func (s *Session) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Join receives a room's messages from now on. A room the server refuses (it does not exist,
// or is private) is reported once by EventJoinRefused and then forgotten.
func (s *Session) Join(room string) { s.do(func() { s.join(room, 0, false) }) }

// JoinAfter receives a room's messages with seq > after first, then live ones.
func (s *Session) JoinAfter(room string, after uint64) {
	s.do(func() { s.join(room, after, true) })
}

// Leave stops a room's messages. It changes no membership (that is the API's DELETE
// /api/rooms/{room}/members/{user}, after which the session leaves by itself): with
// Options.MemberRooms, a room the user is still a member of is joined again after the next
// reconnect.
func (s *Session) Leave(room string) { s.do(func() { s.leave(room) }) }

func (s *Session) leave(room string) {
	delete(s.rooms, room)
	delete(s.marks, room)
	for _, sk := range s.sockets() {
		if sk.joined[room] || slices.Contains(sk.joins, room) {
			delete(sk.joined, room)
			s.write(sk, proto.Leave{Type: proto.TypeLeave, Room: room})
		}
	}
}

// Send queues text for a room, which must be joined, and returns its client id. It is sent as
// soon as the room is joined, and again after reconnects until acked (the server stores it
// once). A text or room the server would refuse fails at once (see Pending.Failed).
func (s *Session) Send(room, text string) string {
	id := NewID()
	s.SendWithID(room, id, text)
	return id
}

// SendWithID queues text under a given client id, such as one kept in storage from before a
// reload. An id already in the outbox is ignored.
func (s *Session) SendWithID(room, id, text string) {
	s.enqueue(Pending{Room: room, ID: id, Text: text})
}

// Edit queues an edit of the user's message at seq target to text, and returns its client
// id. It goes through the outbox like a send: sent once the room is joined, again until
// acked (the server stores it once), failed on a refusal such as not_allowed (not the user's
// message) or invalid_target (no such message, an edit or deletion itself, or deleted).
func (s *Session) Edit(room string, target uint64, text string) string {
	id := NewID()
	s.enqueue(Pending{Room: room, ID: id, Text: text, Kind: proto.KindEdit, Target: target})
	return id
}

// Delete queues the deletion of the message at seq target, and returns its client id. It
// goes through the outbox like Edit.
func (s *Session) Delete(room string, target uint64) string {
	id := NewID()
	s.enqueue(Pending{Room: room, ID: id, Kind: proto.KindDelete, Target: target})
	return id
}

// enqueue adds p to the outbox, failed at once when the server would refuse it.
func (s *Session) enqueue(p0 Pending) {
	room, id := p0.Room, p0.ID
	s.mu.Lock()
	if slices.ContainsFunc(s.outbox, func(p *pending) bool { return p.ID == id }) {
		s.mu.Unlock()
		return
	}
	p := &pending{Pending: p0}
	code := refusal(p0)
	p.Failed, p.Code = code != "", code
	s.outbox = append(s.outbox, p)
	if p.Failed { // as if the server had refused it
		s.emitLocked(Event{Kind: EventError, Room: room, Code: code, Text: refusals[code], ID: id})
	}
	s.outboxChangedLocked(id, code)
	s.mu.Unlock()
	s.do(func() {
		s.mu.Lock()
		p.queued = true
		s.mu.Unlock()
		s.flush()
	})
}

// refusal returns the error code the server would refuse p with, by the rules it shares
// with the client, or "".
func refusal(p Pending) string {
	var code string
	switch p.Kind {
	case "", proto.KindEdit:
		_, code = proto.NormalizeText(p.Text)
	case proto.KindDelete:
	default:
		code = proto.CodeBadFrame
	}
	switch {
	case !proto.ValidRoomName(p.Room):
		code = proto.CodeInvalidRoom
	case !proto.ValidClientID(p.ID):
		code = proto.CodeBadFrame
	case p.Kind != "" && p.Target == 0:
		code = proto.CodeInvalidTarget
	}
	return code
}

// refusals are the sentences of the sends the session refuses itself.
var refusals = map[string]string{
	proto.CodeEmptyText:     "The message is empty.",
	proto.CodeTextTooLong:   fmt.Sprintf("A message has at most %d characters.", proto.TextMax),
	proto.CodeInvalidRoom:   fmt.Sprintf("A room name has 1 to %d of a-z, 0-9 and -.", proto.RoomNameMax),
	proto.CodeBadFrame:      fmt.Sprintf("A send needs an id of 1 to %d characters.", proto.ClientIDMax),
	proto.CodeInvalidTarget: "There is no such message.",
}

// Retry puts a failed send back in the queue.
func (s *Session) Retry(id string) {
	s.mu.Lock()
	i := slices.IndexFunc(s.outbox, func(p *pending) bool { return p.ID == id })
	if i < 0 || !s.outbox[i].Failed {
		s.mu.Unlock()
		return
	}
	p := s.outbox[i]
	p.Failed, p.Code, p.sentOn, p.tries, p.notBefore = false, "", nil, 0, time.Time{}
	s.outboxChangedLocked(id, "")
	s.mu.Unlock()
	s.do(s.flush)
}

// Discard removes a send from the outbox for good, failed or not. A send already on its way
// may still be stored.
func (s *Session) Discard(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.outbox)
	s.outbox = slices.DeleteFunc(s.outbox, func(p *pending) bool { return p.ID == id })
	if len(s.outbox) != n {
		s.outboxChangedLocked(id, "")
	}
}

// Outbox returns the sends waiting for their ack and the failed ones, oldest first.
func (s *Session) Outbox() []Pending {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outboxLocked()
}

func (s *Session) outboxLocked() []Pending {
	list := make([]Pending, len(s.outbox))
	for i, p := range s.outbox {
		list[i] = p.Pending
	}
	return list
}

func (s *Session) outboxChangedLocked(id, code string) {
	s.emitLocked(Event{Kind: EventOutbox, ID: id, Code: code, Outbox: s.outboxLocked()})
}

// Typing tells the room the user is typing, at most once per proto.TypingEvery.
func (s *Session) Typing(room string) {
	s.do(func() {
		now := time.Now()
		if s.cur != nil && s.cur.joined[room] && now.Sub(s.typedAt[room]) >= proto.TypingEvery {
			s.typedAt[room] = now
			s.write(s.cur, proto.Typing{Type: proto.TypeTyping, Room: room})
		}
	})
}

// CheckNow re-checks the token and the connection at once: for a page that wakes from sleep or
// becomes visible, where timers may have been held back.
func (s *Session) CheckNow() { s.do(s.checkNow) }

// Offline tells the session that the device lost its network (the browser's offline event):
// it drops its sockets, shows StateOffline and makes no attempt until Online or CheckNow.
func (s *Session) Offline() {
	s.do(func() {
		s.offline = true
		s.retryTimer.Stop()
		for _, sk := range s.sockets() {
			s.drop(sk, 0, "")
		}
		s.cur, s.next = nil, nil
		s.setState(StateOffline)
	})
}

// Online tells the session that the device has a network again (the browser's online event):
// it checks the token and the connection at once, without waiting for its backoff.
func (s *Session) Online() { s.do(s.checkNow) }

// do queues f for the Run goroutine. It never blocks.
func (s *Session) do(f func()) {
	s.mu.Lock()
	if !s.stopped {
		s.cmds = append(s.cmds, f)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run runs the session until ctx ends (nil) or the user must sign in again (ErrLoginRequired).
// It must be called once.
func (s *Session) Run(ctx context.Context) error {
	s.runCtx = ctx
	s.loginRequired = make(chan struct{})
	s.refreshTimer = time.NewTimer(time.Hour)
	s.retryTimer = time.NewTimer(time.Hour)
	s.refreshTimer.Stop()
	s.retryTimer.Stop()
	flush := time.NewTicker(500 * time.Millisecond)
	defer func() {
		flush.Stop()
		s.refreshTimer.Stop()
		s.retryTimer.Stop()
		for _, sk := range s.sockets() {
			s.drop(sk, 1000, "bye")
		}
		// Commands queued before the end still run, on a session that is over: a socket
		// dialled meanwhile is closed rather than leaked.
		s.over = true
		s.mu.Lock()
		s.stopped = true
		cmds := s.cmds
		s.cmds = nil
		s.mu.Unlock()
		for _, f := range cmds {
			f()
		}
		s.mu.Lock()
		for _, sub := range s.subs {
			sub.end()
		}
		s.subs = nil
		s.mu.Unlock()
	}()
	s.mu.Lock()
	tb := s.token
	s.mu.Unlock()
	if tb.AccessToken == "" {
		s.refresh()
	} else {
		s.emit(Event{Kind: EventToken, Token: tb})
		s.scheduleRefresh()
		s.connect()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.loginRequired:
			return ErrLoginRequired
		case <-s.wake:
			s.mu.Lock()
			cmds := s.cmds
			s.cmds = nil
			s.mu.Unlock()
			for _, f := range cmds {
				f()
			}
		case e := <-s.inbox:
			s.handle(e)
		case <-s.refreshTimer.C:
			s.refresh()
		case <-s.retryTimer.C:
			s.retry()
		case <-flush.C:
			s.flush()
		}
	}
}

func (s *Session) checkNow() {
	s.offline = false
	s.attempts = 0
	s.scheduleRefresh() // its timer may have fired while offline, and done nothing
	switch {
	case s.tokenStale(time.Now()):
		s.refresh()
	case s.cur == nil:
		s.connect()
	default:
		s.cur.probeNow()
	}
}

func (s *Session) join(room string, after uint64, known bool) {
	if _, ok := s.rooms[room]; ok {
		return
	}
	if !proto.ValidRoomName(room) {
		s.joinRefused(room, proto.CodeInvalidRoom, refusals[proto.CodeInvalidRoom])
		return
	}
	s.rooms[room] = &roomState{lastSeq: after, known: known}
	for _, sk := range s.sockets() {
		s.sendJoin(sk, room)
	}
}

func (s *Session) sendJoin(sk *socket, room string) {
	j := proto.Join{Type: proto.TypeJoin, Room: room}
	if rs := s.rooms[room]; rs.known {
		after := rs.lastSeq
		j.After = &after
	}
	sk.joins = append(sk.joins, room)
	s.write(sk, j)
}

// joinRefused forgets a room the server will not join, fails its outbox entries, and lets a
// socket waiting only for that room take over.
func (s *Session) joinRefused(room, code, text string) {
	delete(s.rooms, room)
	delete(s.marks, room)
	s.mu.Lock()
	delete(s.counts, room) // it does not exist for the user
	s.mu.Unlock()
	for _, sk := range s.sockets() {
		delete(sk.joined, room)
	}
	s.emit(Event{Kind: EventJoinRefused, Room: room, Code: code, Text: text})
	s.mu.Lock()
	for _, p := range s.outbox {
		if p.Room == room && !p.Failed {
			p.Failed, p.Code = true, code
			s.outboxChangedLocked(p.ID, code)
		}
	}
	s.mu.Unlock()
	if s.next != nil && s.allJoined(s.next) {
		s.promote()
	}
}

// tokenStale reports whether the token is past three quarters of its lifetime.
func (s *Session) tokenStale(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token.AccessToken == "" || now.Sub(s.tokenAt) >= refreshAfter(s.token)
}

// minRefreshAfter keeps a session with a very short token lifetime (expires_in counts whole
// seconds down, so a 1 s token says 0) from refreshing in a loop.
const minRefreshAfter = 500 * time.Millisecond

// refreshAfter is three quarters of the token's lifetime, as the server counted it.
func refreshAfter(tb proto.TokenBody) time.Duration {
	return max(time.Duration(tb.ExpiresIn)*time.Second*3/4, minRefreshAfter)
}

func (s *Session) scheduleRefresh() {
	s.mu.Lock()
	d := refreshAfter(s.token) - time.Since(s.tokenAt)
	s.mu.Unlock()
	s.refreshTimer.Reset(max(d, 0))
}

// refresh starts a refresh, or joins the one in flight; refreshed gets the outcome.
func (s *Session) refresh() {
	if !s.over && !s.offline {
		s.startRefresh()
	}
}

func (s *Session) refreshed(tb proto.TokenBody, err error) {
	if s.over {
		return
	}
	if err != nil {
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.Status == 401 {
			s.end()
			return
		}
		s.logf("refresh failed: %v", err)
		s.failed()
		return
	}
	s.emit(Event{Kind: EventToken, Token: tb})
	s.scheduleRefresh()
	if tb.AccessToken != s.dialToken {
		s.connect() // make-before-break: the old socket closes once the new one has rejoined
	}
}

// end stops the session: the user must sign in again.
func (s *Session) end() {
	if s.over {
		return
	}
	s.over = true
	s.emit(Event{Kind: EventLoginRequired})
	close(s.loginRequired)
}

// failed counts a failed attempt and schedules the next one with backoff: the ceiling doubles
// from 500 ms up to MaxBackoff, and the wait is between half the ceiling and all of it.
func (s *Session) failed() {
	if s.offline {
		return // Online or CheckNow tries again
	}
	s.attempts++
	if s.cur == nil {
		if s.attempts >= 3 {
			s.setState(StateOffline)
		} else {
			s.setState(StateReconnecting)
		}
	}
	ceiling := min(s.opts.MaxBackoff, 250*time.Millisecond<<min(s.attempts, 16))
	s.retryTimer.Reset(ceiling/2 + randN(ceiling/2+1))
}

func (s *Session) retry() {
	if s.offline || s.over {
		return
	}
	if s.tokenStale(time.Now()) {
		s.refresh()
	} else if s.cur == nil || s.next == nil {
		s.connect()
	}
}

func (s *Session) handle(e sockEvent) {
	if e.err != nil {
		s.ended(e.s, e.err)
		return
	}
	if e.s.dropped {
		return
	}
	for i := range e.frames {
		s.frame(e.s, &e.frames[i])
	}
}

func (s *Session) frame(sk *socket, fr *frame) {
	f := &fr.Frame
	switch f.Type {
	case proto.TypeHello:
		sk.ready, sk.helloAt = true, time.Now()
		if sk == s.cur {
			// The first socket, or one after a reconnect (a replacing socket says hello as next).
			if s.opts.MemberRooms {
				s.listRooms()
			}
			s.setState(StateConnected)
			s.flush()
		}
	case proto.TypeJoined:
		if i := slices.Index(sk.joins, f.Room); i >= 0 {
			sk.joins = slices.Delete(sk.joins, i, i+1)
		}
		rs := s.rooms[f.Room]
		if rs == nil {
			return
		}
		sk.joined[f.Room] = true
		if !rs.known {
			rs.lastSeq, rs.known = f.LastSeq, true
		}
		s.mu.Lock()
		rc := s.roomCountLocked(f.Room)
		ask := !rc.seeded && !rc.asked && !s.listing
		rc.asked = rc.asked || ask
		s.mu.Unlock()
		if ask {
			s.fetchRoom(f.Room) // once, for its unread counts
		}
		if sk == s.next && s.allJoined(sk) {
			s.promote()
		}
		s.flush()
	case proto.TypeMessage:
		rs := s.rooms[f.Room]
		if rs == nil || f.Seq <= rs.lastSeq {
			return // not ours, or seen on the other socket
		}
		if f.Seq != rs.lastSeq+1 {
			s.logf("room %s: seq %d after %d", f.Room, f.Seq, rs.lastSeq)
		}
		rs.lastSeq = f.Seq
		m := proto.Message{Room: f.Room, Seq: f.Seq, ID: f.ID, From: f.From, Text: f.Text, TS: f.TS, Kind: f.Kind, Target: f.Target, Mentions: f.Mentions}
		s.mu.Lock()
		missed := s.countLocked(&m) // first, so that a subscriber finds the message counted
		s.emitLocked(Event{Kind: EventMessage, Room: f.Room, Message: m, Raw: fr.raw})
		s.mu.Unlock()
		if missed {
			s.fetchRoom(f.Room)
		}
	case proto.TypeAck:
		sk.acked = true
		s.attempts = 0
		s.mu.Lock()
		n := len(s.outbox)
		s.outbox = slices.DeleteFunc(s.outbox, func(p *pending) bool { return p.ID == f.ID && p.Room == f.Room })
		if len(s.outbox) != n {
			s.emitLocked(Event{Kind: EventAck, Room: f.Room, ID: f.ID, Seq: f.Seq})
			s.outboxChangedLocked(f.ID, "")
		}
		s.mu.Unlock()
	case proto.TypePresence:
		sk.presence[f.Room] = f.Online
		if sk == s.cur {
			s.emit(Event{Kind: EventPresence, Room: f.Room, Online: f.Online})
		}
	case proto.TypeTyping:
		if sk == s.cur {
			s.emit(Event{Kind: EventTyping, Room: f.Room, User: f.User.Name})
		}
	case proto.TypeRead:
		s.readFrame(f.Room, f.Seq)
	case proto.TypeRoom:
		if f.RoomInfo != nil {
			s.roomFrame(*f.RoomInfo)
		}
	case proto.TypeError:
		if f.Ref != "" {
			s.sendRefused(f)
		} else {
			s.frameRefused(sk, f)
		}
	default:
		if sk == s.cur {
			s.emit(Event{Kind: EventFrame, Room: f.Room, Text: f.Type, Raw: fr.raw})
		}
	}
}

// sendRefused handles an error frame about one of our sends. Rate and storage refusals are
// transient: the send waits, longer each time, and goes again. Any other refusal fails it.
func (s *Session) sendRefused(f *proto.Frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.outbox, func(p *pending) bool { return p.ID == f.Ref })
	if i < 0 {
		s.emitLocked(Event{Kind: EventError, Room: f.Room, Code: f.Code, Text: f.Message, ID: f.Ref})
		return
	}
	p := s.outbox[i]
	switch f.Code {
	case proto.CodeRateLimited, proto.CodeUnavailable:
		p.tries++
		ceiling := min(s.opts.MaxBackoff, 250*time.Millisecond<<min(p.tries, 16))
		p.sentOn, p.notBefore = nil, time.Now().Add(ceiling/2+randN(ceiling/2+1))
	default:
		if p.Failed {
			return
		}
		p.Failed, p.Code, p.sentOn = true, f.Code, nil
		s.emitLocked(Event{Kind: EventError, Room: p.Room, Code: f.Code, Text: f.Message, ID: p.ID})
		s.outboxChangedLocked(p.ID, f.Code)
	}
}

// frameRefused handles an error frame without a ref. The server answers joins in order, each
// with joined or an error, so an error that refuses a join is about the oldest join of the
// socket still unanswered. not_joined (an answer to leave or typing) changes nothing.
func (s *Session) frameRefused(sk *socket, f *proto.Frame) {
	switch {
	case f.Code == proto.CodeNotJoined:
	case len(sk.joins) > 0 && f.Code == proto.CodeRateLimited:
		room := sk.joins[0]
		sk.joins = sk.joins[1:]
		time.AfterFunc(time.Second, func() {
			s.do(func() {
				if !sk.dropped && s.rooms[room] != nil && !sk.joined[room] && !slices.Contains(sk.joins, room) {
					s.sendJoin(sk, room)
				}
			})
		})
	case len(sk.joins) > 0:
		room := sk.joins[0]
		sk.joins = sk.joins[1:]
		if s.rooms[room] != nil { // else already refused on the other socket, or left
			s.joinRefused(room, f.Code, f.Message)
		}
	default:
		s.emit(Event{Kind: EventError, Code: f.Code, Text: f.Message})
	}
}

func (s *Session) allJoined(sk *socket) bool {
	for room := range s.rooms {
		if !sk.joined[room] {
			return false
		}
	}
	return true
}

// promote makes the new socket the one in use and closes the old one.
func (s *Session) promote() {
	old := s.cur
	s.cur, s.next = s.next, nil
	if old != nil {
		s.drop(old, 1000, "replaced")
		s.emit(Event{Kind: EventReplaced})
	}
	if s.cur.ready {
		s.setState(StateConnected)
	}
	// Presence sent to the new socket while it was joining was not passed on.
	for room, online := range s.cur.presence {
		if s.rooms[room] != nil {
			s.emit(Event{Kind: EventPresence, Room: room, Online: online})
		}
	}
	s.flush()
}

// ended handles the end of a socket.
func (s *Session) ended(sk *socket, err error) {
	s.drop(sk, 0, "")
	switch sk {
	case s.next:
		s.next = nil
	case s.cur:
		s.cur = nil
		if s.next != nil {
			// The new socket takes over now; the joins it still waits for resume by seq.
			s.promote()
			return
		}
	default:
		return // a socket already replaced
	}
	if s.over || s.offline || s.runCtx.Err() != nil {
		return
	}
	if sk.ready && (sk.acked || time.Since(sk.helloAt) >= s.opts.StableAfter) {
		s.attempts = 0 // it worked for a while: start the backoff over
	}
	s.logf("socket closed: %v", err)
	switch closeStatus(err) {
	case proto.CloseTokenExpired, proto.CloseUnauthorized, proto.CloseRevoked:
		// A refresh tells whether the session still stands; it reconnects if so.
		if s.cur == nil {
			s.setState(StateReconnecting)
		}
		s.refresh()
	default:
		s.failed()
	}
}

// flush sends the outbox entries not yet sent on the socket in use, within the client's rate.
// An entry waits while its room is being joined; one for a room the session has not joined
// goes anyway, and the server's refusal fails it.
func (s *Session) flush() {
	sk := s.cur
	if sk == nil || !sk.ready {
		return
	}
	s.flushReads()
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.outbox {
		if !p.queued || p.Failed || p.sentOn == sk || now.Before(p.notBefore) || s.rooms[p.Room] != nil && !sk.joined[p.Room] {
			continue
		}
		if !s.limiter.Allow() {
			return
		}
		p.sentOn = sk
		switch p.Kind {
		case proto.KindEdit:
			s.write(sk, proto.Edit{Type: proto.TypeEdit, Room: p.Room, ID: p.ID, Target: p.Target, Text: p.Text})
		case proto.KindDelete:
			s.write(sk, proto.Delete{Type: proto.TypeDelete, Room: p.Room, ID: p.ID, Target: p.Target})
		default:
			s.write(sk, proto.Send{Type: proto.TypeSend, Room: p.Room, ID: p.ID, Text: p.Text})
		}
	}
}

func (s *Session) setState(st State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != st {
		s.state = st
		s.emitLocked(Event{Kind: EventState, State: st})
	}
}

// sockets returns the open sockets.
func (s *Session) sockets() []*socket {
	var list []*socket
	for _, sk := range []*socket{s.cur, s.next} {
		if sk != nil {
			list = append(list, sk)
		}
	}
	return list
}

func (s *Session) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

// NewID returns a random client id for a send.
func NewID() string {
	b := make([]byte, 12)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}
