package client

import (
	"encoding/json"
	"slices"
	"sync"

	"kaiwa/shared/proto"
)

// EventKind tells what an Event carries.
type EventKind int

// Kinds of events. The comment of each says which fields of Event it sets.
const (
	EventMessage       EventKind = iota + 1 // Room, Message: a new message, each seq once, in order; an edit or deletion when Message.Kind is set (apply it to Message.Target)
	EventAck                                // Room, ID, Seq: a send of ours is durable
	EventPresence                           // Room, Online
	EventTyping                             // Room, User
	EventError                              // Room, Code, Text (the server's sentence), ID (the send's id, if any)
	EventState                              // State: the connection state changed
	EventToken                              // Token: a new access token (after login or refresh)
	EventReplaced                           // a socket was replaced by a new one (make-before-break)
	EventLoginRequired                      // the session is over; sign in again
	EventJoinRefused                        // Room, Code, Text: the server refused to join the room; the session no longer asks for it
	EventOutbox                             // ID, Code, Outbox: the outbox changed (queued, acked, failed, retried, discarded); persist Outbox
	EventFrame                              // Text (the frame's type), Room (when a string), Raw: a frame the session does not handle itself, from the socket in use
	EventRead                               // Room, Seq: the user's read marker of the room moved forward (MarkRead, a read frame from any device, a message of the user's own)
	EventUnread                             // Room, Unread, Mentions, Seq (the read marker): the room's counts or marker changed (see Session.Unread)
	EventRoom                               // Room, RoomInfo: RoomList changed: a room appeared in it, or the user became or stopped being a member, or its members changed (a room frame, a listing)
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
	Outbox  []Pending // EventOutbox: the whole outbox after the change, oldest first
	// Unread and Mentions are a room's counts, for EventUnread.
	Unread, Mentions int
	// RoomInfo is the room object as the user now sees it, for EventRoom.
	RoomInfo proto.Room
	// Raw is the frame as received, for EventMessage and EventFrame: fields of the protocol
	// this package does not decode are there.
	Raw json.RawMessage
}

// Filter selects the events of a subscription. The zero Filter selects every event.
type Filter struct {
	// Room, when set, keeps that room's events and the events that concern no room (state,
	// token, replaced, login required, outbox), so that one subscription serves a room's page.
	Room string
	// Kinds, when not empty, keeps only these kinds.
	Kinds []EventKind
}

func (f Filter) match(e *Event) bool {
	if f.Room != "" && e.Room != "" && e.Room != f.Room {
		return false
	}
	return len(f.Kinds) == 0 || slices.Contains(f.Kinds, e.Kind)
}

// Subscription receives the events of a session that match its filter, in the order the
// session emitted them. Its queue has no bound and is drained by a goroutine of its own, so a
// consumer that reads slowly, or not at all, never holds the session back; it holds memory
// instead, so close a subscription that is no longer read.
type Subscription struct {
	s      *Session
	filter Filter
	c      chan Event

	mu     sync.Mutex
	queue  []Event
	wake   chan struct{} // capacity 1: the queue grew or the subscription ended
	ending bool          // the session ended: deliver what is queued, then close C
	closed bool          // Close was called: deliver nothing more
}

// C returns the channel of events. It is closed after Close, or once the session has ended
// and every event before the end was delivered.
func (sub *Subscription) C() <-chan Event { return sub.c }

// Close ends the subscription: C is closed soon after, and events still queued are dropped.
// It may be called more than once, from any goroutine.
func (sub *Subscription) Close() {
	sub.mu.Lock()
	sub.closed, sub.queue = true, nil
	sub.mu.Unlock()
	sub.poke()
	sub.s.unsubscribe(sub)
}

// newSubscription starts a subscription that delivers to out, or to a channel of its own
// when out is nil.
func newSubscription(s *Session, f Filter, out chan Event) *Subscription {
	own := out == nil
	if own {
		out = make(chan Event)
	}
	sub := &Subscription{s: s, filter: f, c: out, wake: make(chan struct{}, 1)}
	go sub.pump(own)
	return sub
}

func (sub *Subscription) poke() {
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

// push queues e, if the subscription wants it. It never blocks.
func (sub *Subscription) push(e *Event) {
	if !sub.filter.match(e) {
		return
	}
	sub.mu.Lock()
	if sub.closed || sub.ending {
		sub.mu.Unlock()
		return
	}
	sub.queue = append(sub.queue, *e)
	sub.mu.Unlock()
	sub.poke()
}

// end delivers what is queued, then closes C.
func (sub *Subscription) end() {
	sub.mu.Lock()
	sub.ending = true
	sub.mu.Unlock()
	sub.poke()
}

// pump moves queued events to C. It closes C only when the subscription made it (own): the
// channel of Events is never closed.
func (sub *Subscription) pump(own bool) {
	defer func() {
		if own {
			close(sub.c)
		}
	}()
	for {
		sub.mu.Lock()
		if sub.closed || sub.ending && len(sub.queue) == 0 {
			sub.mu.Unlock()
			return
		}
		if len(sub.queue) == 0 {
			sub.mu.Unlock()
			<-sub.wake
			continue
		}
		e := sub.queue[0]
		sub.queue[0] = Event{}
		sub.queue = sub.queue[1:]
		sub.mu.Unlock()
		for sent := false; !sent; {
			select {
			case sub.c <- e:
				sent = true
			case <-sub.wake:
				sub.mu.Lock()
				closed := sub.closed
				sub.mu.Unlock()
				if closed {
					return
				}
			}
		}
	}
}
