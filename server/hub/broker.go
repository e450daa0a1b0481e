package hub

import "sync"

// Broker carries room events between the processes that serve a room. Kaiwa runs one process
// today with LocalBroker; a cluster would put a message broker (NATS) behind this interface.
// Every node's hub publishes the messages its own store applies (Appended): between nodes, a
// Broker carries typing only, and hands messages to this node's subscribers alone. Presence
// has an interface of its own (Presence).
type Broker interface {
	// Publish hands ev to every subscriber of the room. For one room, subscribers see events in
	// the order of Publish calls.
	Publish(room string, ev Event)
	// Subscribe registers deliver for the room's events until unsubscribe is called. deliver
	// must not block.
	Subscribe(room string, deliver func(Event)) (unsubscribe func())
}

// EventKind tells what an Event carries.
type EventKind uint8

// Kinds of events.
const (
	EventMessage EventKind = iota + 1
	EventTyping
)

// Event is one published frame of a room, already encoded: it is encoded once and written to
// every member as is.
type Event struct {
	Kind  EventKind
	Seq   uint64 // EventMessage: the message's seq
	User  string // EventTyping: who is typing (not relayed back to them)
	Frame []byte // the encoded frame; shared, never modified
	// starts, when set, holds back the writers this event's delivery would start until the
	// whole commit it belongs to is queued: a member then gets one write for all of the
	// commit's messages to it, not one per message. Events delivered after the commit's
	// writers were started start theirs at once.
	starts *writerStarts
}

// LocalBroker delivers events within this process, synchronously.
type LocalBroker struct {
	mu   sync.RWMutex
	subs map[string]map[*func(Event)]struct{}
}

// NewLocalBroker returns an empty LocalBroker.
func NewLocalBroker() *LocalBroker {
	return &LocalBroker{subs: map[string]map[*func(Event)]struct{}{}}
}

// Publish calls every subscriber of the room in the caller's goroutine.
func (b *LocalBroker) Publish(room string, ev Event) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for deliver := range b.subs[room] {
		(*deliver)(ev)
	}
}

// Subscribe registers deliver for the room.
func (b *LocalBroker) Subscribe(room string, deliver func(Event)) func() {
	key := &deliver
	b.mu.Lock()
	if b.subs[room] == nil {
		b.subs[room] = map[*func(Event)]struct{}{}
	}
	b.subs[room][key] = struct{}{}
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		delete(b.subs[room], key)
		b.mu.Unlock()
	}
}
