package hub

import (
	"sync"
	"time"
)

// DefaultPresenceRefresh is how often a node publishes again the online users it has in a room
// while it has some, unless Config.PresenceRefresh says otherwise. A set not refreshed within
// presenceTTLRefreshes of them is dropped: the users of a node that died go offline.
const DefaultPresenceRefresh = 10 * time.Second

// presenceTTLRefreshes is how many refresh periods a node's set of a room lives unrefreshed.
const presenceTTLRefreshes = 3

// Presence carries, between the nodes that serve a room, which users each node has online in
// it. A room's presence frame is the union of the users online on this node and the latest set
// of every other node. Kaiwa alone in its process uses a LocalPresence with no other node; a
// cluster puts a message bus behind this interface.
//
// The hub keeps its side of the contract: it publishes a room's set when it changes, coalesced
// with the presence frames (at most one a second per room), again every PresenceRefresh while
// the set is not empty, and an empty set when the room leaves its memory; for one room, it
// never calls Publish twice at once, so sets leave a node in order. It drops another node's set
// when it was not refreshed within three PresenceRefresh periods.
//
// An implementation over NATS core (no JetStream: presence is worth nothing late) publishes a
// set on a subject of its room (say kaiwa.presence.ROOM) as {"node":ID,"online":[...]}, skips
// its own node's messages on delivery, and on Subscribe asks the other nodes for their sets
// (say a request on kaiwa.presence.ROOM.sync, that each node serving the room answers by
// publishing its set again), so that a node loading a room need not wait for a refresh.
type Presence interface {
	// Publish replaces this node's set of the room's online users, as the other nodes see it:
	// user names, sorted and unique; empty when none is left. It must not block for long. The
	// hub never calls it while holding a room's lock.
	Publish(room string, online []string)
	// Subscribe registers deliver for the sets that the other nodes publish for the room, until
	// unsubscribe is called, and makes their current sets reach deliver soon. deliver gets the
	// publishing node's id and its set (empty: none left there), for one node in the order
	// published, never this node's own; it must not block, and must not call Publish.
	Subscribe(room string, deliver func(node string, online []string)) (unsubscribe func())
}

// LocalPresence carries presence between the nodes of one process: each Node is one. Kaiwa
// alone in its process uses one Node of a LocalPresence of its own, which has nobody to tell.
type LocalPresence struct {
	mu   sync.Mutex
	sets map[string]map[string][]string       // room → node → its latest set
	subs map[string]map[*presenceSub]struct{} // room → subscribers
}

type presenceSub struct {
	node    string
	deliver func(node string, online []string)
}

// NewLocalPresence returns a LocalPresence without nodes.
func NewLocalPresence() *LocalPresence {
	return &LocalPresence{sets: map[string]map[string][]string{}, subs: map[string]map[*presenceSub]struct{}{}}
}

// Node returns the Presence of the node named id.
func (p *LocalPresence) Node(id string) Presence { return localNode{p: p, id: id} }

type localNode struct {
	p  *LocalPresence
	id string
}

// Publish delivers the set to the room's subscribers of every other node, in the caller's
// goroutine, and keeps it for those that subscribe later. Deliveries happen under the
// LocalPresence's lock, so each subscriber sees a node's sets in the order published.
func (n localNode) Publish(room string, online []string) {
	p := n.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(online) == 0 {
		delete(p.sets[room], n.id)
		if len(p.sets[room]) == 0 {
			delete(p.sets, room)
		}
	} else {
		if p.sets[room] == nil {
			p.sets[room] = map[string][]string{}
		}
		p.sets[room][n.id] = online
	}
	for s := range p.subs[room] {
		if s.node != n.id {
			s.deliver(n.id, online)
		}
	}
}

// Subscribe registers deliver and hands it the sets the other nodes hold now, before it
// returns.
func (n localNode) Subscribe(room string, deliver func(node string, online []string)) func() {
	p := n.p
	s := &presenceSub{node: n.id, deliver: deliver}
	p.mu.Lock()
	if p.subs[room] == nil {
		p.subs[room] = map[*presenceSub]struct{}{}
	}
	p.subs[room][s] = struct{}{}
	for node, online := range p.sets[room] {
		if node != n.id {
			deliver(node, online)
		}
	}
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(p.subs[room], s)
		if len(p.subs[room]) == 0 {
			delete(p.subs, room)
		}
		p.mu.Unlock()
	}
}
