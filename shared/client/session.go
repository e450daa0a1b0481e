package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
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

// EventKind tells what an Event carries.
type EventKind int

// Kinds of events.
const (
	EventMessage       EventKind = iota + 1 // Message: a new message, each seq once, in order
	EventAck                                // Room, ID, Seq: a send of ours is durable
	EventPresence                           // Room, Online
	EventTyping                             // Room, User
	EventError                              // Code, Text (the server's sentence), ID (the send's id)
	EventState                              // State changed
	EventToken                              // Token: a new access token (after login or refresh)
	EventReplaced                           // a socket was replaced by a new one (make-before-break)
	EventLoginRequired                      // the session is over; sign in again
)

// Event is something that happened in a session.
type Event struct {
	Kind    EventKind
	Room    string
	Message proto.Message
	ID      string
	Seq     uint64
	Online  []string
	User    string
	Code    string
	Text    string
	State   State
	Token   proto.TokenBody
}

// Pending is a send waiting in the outbox for its ack.
type Pending struct {
	Room, ID, Text string
}

// Options configure a Session. Zero values mean the defaults.
type Options struct {
	// Token is an access token from Login or Register. Without one the session starts with a
	// refresh (the cookie of an earlier sign-in).
	Token *proto.TokenBody
	// Events receives the session's events; the session blocks while it is full, so read it.
	// Nil means a channel of 1024 made by NewSession (see Session.Events).
	Events chan Event
	// Backoff bounds the wait between failed connection attempts; default 20 s.
	MaxBackoff time.Duration
	// Refresh, when set, replaces API.Refresh for the session's refreshes: the browser app
	// wraps it in a lock shared by its tabs, so that one tab at a time rotates the cookie.
	Refresh func(ctx context.Context) (proto.TokenBody, error)
	// Logf, when set, receives diagnostics.
	Logf func(format string, args ...any)
}

// Session keeps a user connected: it refreshes the access token at about three quarters of its
// lifetime, opens a new socket and rejoins every room with after = the last seq seen before it
// closes the old one, reconnects with backoff after failures, and resends unacknowledged sends
// until they are acked. Messages reach Events once each, in seq order per room.
//
// A Session runs in Run; its other methods may be called from any goroutine.
type Session struct {
	api  *API
	opts Options
	cmds chan func()
	ev   chan Event

	mu    sync.Mutex
	token proto.TokenBody // guarded by mu, for AccessToken

	// Owned by the Run goroutine.
	runCtx        context.Context
	loginRequired chan struct{}
	over          bool
	cur, next     *socket   // the socket in use, and the one replacing it
	tokenAt       time.Time // when token was received (monotonic clock)
	rooms         map[string]*roomState
	outbox        []*pending
	attempts      int // failed attempts in a row
	state         State
	refreshing    bool
	dialing       bool
	limiter       *rate.Limiter
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
	sentOn *socket
}

type socket struct {
	ws     *websocket.Conn
	joined map[string]bool
	ready  bool // hello received
}

type sockEvent struct {
	s      *socket
	frames []proto.Frame
	err    error // the socket ended
}

// NewSession returns a session over api; start it with Run.
func NewSession(api *API, opts Options) *Session {
	if opts.Events == nil {
		opts.Events = make(chan Event, 1024)
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 20 * time.Second
	}
	s := &Session{
		api: api, opts: opts, cmds: make(chan func(), 64), ev: opts.Events,
		rooms: map[string]*roomState{}, inbox: make(chan sockEvent, 64),
		// The server allows 20 sends/s, burst 40: stay under it when the outbox drains.
		limiter: rate.NewLimiter(15, 30),
		state:   StateReconnecting,
	}
	if opts.Token != nil {
		s.token = *opts.Token
	}
	return s
}

// Events returns the channel of the session's events.
func (s *Session) Events() <-chan Event { return s.ev }

// AccessToken returns the current access token, for HTTP API calls.
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

// Join receives a room's messages from now on.
func (s *Session) Join(room string) { s.do(func() { s.join(room, 0, false) }) }

// JoinAfter receives a room's messages with seq > after first, then live ones.
func (s *Session) JoinAfter(room string, after uint64) {
	s.do(func() { s.join(room, after, true) })
}

// Leave stops a room's messages.
func (s *Session) Leave(room string) {
	s.do(func() {
		delete(s.rooms, room)
		for _, sk := range []*socket{s.cur, s.next} {
			if sk != nil && sk.joined[room] {
				delete(sk.joined, room)
				s.write(sk, proto.Leave{Type: proto.TypeLeave, Room: room})
			}
		}
	})
}

// Send queues text for a room and returns its client id. It is sent as soon as the session is
// connected, and again after reconnects until acked (the server stores it once).
func (s *Session) Send(room, text string) string {
	id := NewID()
	s.SendWithID(room, id, text)
	return id
}

// SendWithID queues text under a given client id, such as one kept in storage from before a
// reload.
func (s *Session) SendWithID(room, id, text string) {
	s.do(func() {
		for _, p := range s.outbox {
			if p.ID == id {
				return
			}
		}
		s.outbox = append(s.outbox, &pending{Pending: Pending{Room: room, ID: id, Text: text}})
		s.flush()
	})
}

// Typing tells the room the user is typing.
func (s *Session) Typing(room string) {
	s.do(func() {
		if s.cur != nil && s.cur.joined[room] {
			s.write(s.cur, proto.Typing{Type: proto.TypeTyping, Room: room})
		}
	})
}

// CheckNow re-checks the token and the connection at once: for a page that wakes from sleep,
// becomes visible or comes back online, where timers may have been held back.
func (s *Session) CheckNow() {
	s.do(func() {
		s.attempts = 0
		switch {
		case s.tokenStale(time.Now()):
			s.refresh()
		case s.cur == nil:
			s.connect()
		}
	})
}

func (s *Session) do(f func()) {
	s.cmds <- f
}

// post hands f to the Run goroutine from one of the session's own goroutines.
func (s *Session) post(f func()) {
	select {
	case s.cmds <- f:
	case <-s.runCtx.Done():
	}
}

// Run runs the session until ctx ends (nil) or the user must sign in again (ErrLoginRequired).
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
		for _, sk := range []*socket{s.cur, s.next} {
			if sk != nil {
				go sk.ws.Close(websocket.StatusNormalClosure, "bye")
			}
		}
	}()
	if s.token.AccessToken == "" {
		s.refresh()
	} else {
		s.tokenAt = time.Now()
		s.emit(Event{Kind: EventToken, Token: s.token})
		s.scheduleRefresh()
		s.connect()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.loginRequired:
			return ErrLoginRequired
		case f := <-s.cmds:
			f()
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

func (s *Session) join(room string, after uint64, known bool) {
	if _, ok := s.rooms[room]; ok {
		return
	}
	s.rooms[room] = &roomState{lastSeq: after, known: known}
	for _, sk := range []*socket{s.cur, s.next} {
		if sk != nil {
			s.sendJoin(sk, room)
		}
	}
}

func (s *Session) sendJoin(sk *socket, room string) {
	j := proto.Join{Type: proto.TypeJoin, Room: room}
	if rs := s.rooms[room]; rs.known {
		after := rs.lastSeq
		j.After = &after
	}
	s.write(sk, j)
}

// tokenStale reports whether the token is past three quarters of its lifetime.
func (s *Session) tokenStale(now time.Time) bool {
	return s.token.AccessToken == "" || now.Sub(s.tokenAt) >= s.refreshAfter()
}

// minRefreshAfter keeps a session with a very short token lifetime (expires_in counts whole
// seconds down, so a 1 s token says 0) from refreshing in a loop.
const minRefreshAfter = 500 * time.Millisecond

// refreshAfter is three quarters of the token's lifetime, as the server counted it.
func (s *Session) refreshAfter() time.Duration {
	return max(time.Duration(s.token.ExpiresIn)*time.Second*3/4, minRefreshAfter)
}

func (s *Session) scheduleRefresh() {
	s.refreshTimer.Reset(max(s.refreshAfter()-time.Since(s.tokenAt), 0))
}

// refresh trades the refresh cookie for a new token, then opens a new socket with it.
func (s *Session) refresh() {
	if s.refreshing || s.over {
		return
	}
	s.refreshing = true
	refresh := s.api.Refresh
	if s.opts.Refresh != nil {
		refresh = s.opts.Refresh
	}
	go func() {
		ctx, cancel := context.WithTimeout(s.runCtx, 15*time.Second)
		tb, err := refresh(ctx)
		cancel()
		s.post(func() { s.refreshed(tb, err) })
	}()
}

func (s *Session) refreshed(tb proto.TokenBody, err error) {
	s.refreshing = false
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
	s.mu.Lock()
	s.token = tb
	s.mu.Unlock()
	s.tokenAt = time.Now()
	s.emit(Event{Kind: EventToken, Token: tb})
	s.scheduleRefresh()
	s.connect() // make-before-break: the old socket closes once the new one has rejoined
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

// connect opens a socket with the current token.
func (s *Session) connect() {
	if s.dialing || s.over {
		return
	}
	s.dialing = true
	token := s.token.AccessToken
	url := "ws" + strings.TrimPrefix(s.api.Base(), "http") + "/ws"
	go func() {
		ctx, cancel := context.WithTimeout(s.runCtx, 15*time.Second)
		ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
			Subprotocols: []string{proto.Subprotocol, proto.BearerProtocol + token},
		})
		cancel()
		s.post(func() { s.dialed(ws, err) })
	}()
}

func (s *Session) dialed(ws *websocket.Conn, err error) {
	s.dialing = false
	if err != nil {
		s.logf("dial failed: %v", err)
		s.failed()
		return
	}
	if s.over || s.runCtx.Err() != nil {
		go ws.Close(websocket.StatusNormalClosure, "bye")
		return
	}
	ws.SetReadLimit(-1) // the server packs many frames into one message
	sk := &socket{ws: ws, joined: map[string]bool{}}
	go s.read(sk)
	if s.cur == nil {
		s.cur = sk
	} else {
		if s.next != nil {
			go s.next.ws.Close(websocket.StatusNormalClosure, "superseded")
		}
		s.next = sk
	}
	for room := range s.rooms {
		s.sendJoin(sk, room)
	}
	if s.next == sk && len(s.rooms) == 0 {
		s.promote()
	}
}

// failed counts a failed attempt and schedules the next one with backoff (full jitter).
func (s *Session) failed() {
	s.attempts++
	if s.cur == nil {
		if s.attempts >= 3 {
			s.setState(StateOffline)
		} else {
			s.setState(StateReconnecting)
		}
	}
	ceiling := min(s.opts.MaxBackoff, 250*time.Millisecond<<min(s.attempts, 16))
	s.retryTimer.Reset(50*time.Millisecond + mathrand.N(ceiling))
}

func (s *Session) retry() {
	if s.tokenStale(time.Now()) {
		s.refresh()
	} else if s.cur == nil || s.next == nil {
		s.connect()
	}
}

func (s *Session) read(sk *socket) {
	for {
		_, data, err := sk.ws.Read(s.runCtx)
		if err != nil {
			select {
			case s.inbox <- sockEvent{s: sk, err: err}:
			case <-s.runCtx.Done():
			}
			return
		}
		var frames []proto.Frame
		for line := range bytes.SplitSeq(data, []byte{'\n'}) {
			if len(line) == 0 {
				continue
			}
			var f proto.Frame
			if err := json.Unmarshal(line, &f); err != nil {
				s.logf("bad frame from server: %v", err)
				continue
			}
			frames = append(frames, f)
		}
		select {
		case s.inbox <- sockEvent{s: sk, frames: frames}:
		case <-s.runCtx.Done():
			return
		}
	}
}

func (s *Session) handle(e sockEvent) {
	if e.err != nil {
		s.ended(e.s, e.err)
		return
	}
	for i := range e.frames {
		s.frame(e.s, &e.frames[i])
	}
}

func (s *Session) frame(sk *socket, f *proto.Frame) {
	switch f.Type {
	case proto.TypeHello:
		sk.ready = true
		if sk == s.cur {
			s.attempts = 0
			s.setState(StateConnected)
		}
	case proto.TypeJoined:
		rs := s.rooms[f.Room]
		if rs == nil {
			return
		}
		sk.joined[f.Room] = true
		if !rs.known {
			rs.lastSeq, rs.known = f.LastSeq, true
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
		s.emit(Event{Kind: EventMessage, Room: f.Room, Message: proto.Message{Room: f.Room, Seq: f.Seq, ID: f.ID, From: f.From, Text: f.Text, TS: f.TS}})
	case proto.TypeAck:
		for i, p := range s.outbox {
			if p.ID == f.ID && p.Room == f.Room {
				s.outbox = append(s.outbox[:i], s.outbox[i+1:]...)
				s.emit(Event{Kind: EventAck, Room: f.Room, ID: f.ID, Seq: f.Seq})
				break
			}
		}
	case proto.TypePresence:
		if sk == s.cur {
			s.emit(Event{Kind: EventPresence, Room: f.Room, Online: f.Online})
		}
	case proto.TypeTyping:
		if sk == s.cur {
			s.emit(Event{Kind: EventTyping, Room: f.Room, User: f.User.Name})
		}
	case proto.TypeError:
		if f.Code == proto.CodeRateLimited {
			for _, p := range s.outbox {
				if p.ID == f.Ref {
					p.sentOn = nil // the flush tick sends it again
				}
			}
			return
		}
		s.emit(Event{Kind: EventError, Room: f.Room, Code: f.Code, Text: f.Message, ID: f.Ref})
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
		go old.ws.Close(websocket.StatusNormalClosure, "replaced")
		s.emit(Event{Kind: EventReplaced})
	}
	if s.cur.ready {
		s.attempts = 0
		s.setState(StateConnected)
	}
	s.flush()
}

// ended handles the end of a socket.
func (s *Session) ended(sk *socket, err error) {
	code := websocket.CloseStatus(err)
	switch sk {
	case s.next:
		s.next = nil
	case s.cur:
		s.cur = nil
		if s.next != nil && s.allJoined(s.next) {
			s.promote()
			return
		}
	default:
		return // a socket already replaced
	}
	if s.over || s.runCtx.Err() != nil {
		return
	}
	s.logf("socket closed: %v", err)
	switch code {
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
func (s *Session) flush() {
	sk := s.cur
	if sk == nil || !sk.ready {
		return
	}
	for _, p := range s.outbox {
		if p.sentOn == sk || !sk.joined[p.Room] {
			continue
		}
		if !s.limiter.Allow() {
			return
		}
		p.sentOn = sk
		s.write(sk, proto.Send{Type: proto.TypeSend, Room: p.Room, ID: p.ID, Text: p.Text})
	}
}

// Outbox returns the sends waiting for their ack, oldest first.
func (s *Session) Outbox() []Pending {
	out := make(chan []Pending, 1)
	s.do(func() {
		list := make([]Pending, len(s.outbox))
		for i, p := range s.outbox {
			list[i] = p.Pending
		}
		out <- list
	})
	return <-out
}

func (s *Session) write(sk *socket, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("kaiwa: encode frame: %v", err))
	}
	ctx, cancel := context.WithTimeout(s.runCtx, 5*time.Second)
	defer cancel()
	// A failed write ends the socket; its reader reports that.
	sk.ws.Write(ctx, websocket.MessageText, b)
}

func (s *Session) setState(st State) {
	if s.state != st {
		s.state = st
		s.emit(Event{Kind: EventState, State: st})
	}
}

func (s *Session) emit(e Event) {
	select {
	case s.ev <- e:
	case <-s.runCtx.Done():
	}
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
