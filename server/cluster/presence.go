package cluster

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"kaiwa/server/hub"
)

// Presence goes over NATS core: it is worth nothing late, so nothing is stored.
// kaiwa.presence.set.ROOM carries a node's set of a room's online users; a node that loads a
// room asks the others for theirs on kaiwa.presence.sync.ROOM, and each answers by publishing
// its set again. Room names are a-z 0-9 -, valid subject tokens.

type presenceSet struct {
	Node   string   `json:"node"`
	Online []string `json:"online"`
}

// Presence is the hub's Presence on a cluster node (see hub.Presence for the contract). Two
// subscriptions per node carry the sets and the sync requests of every room; the hub drops the
// set of a node that stopped refreshing it, so the users of a node that died go offline. Its
// methods may be called concurrently.
type Presence struct {
	nc        *nats.Conn
	id        string
	set, sync string // subject prefixes: kaiwa.presence.set. and kaiwa.presence.sync.

	mu   sync.Mutex
	own  map[string][]string                             // room → this node's latest set, to answer sync requests
	subs map[string]map[*func(string, []string)]struct{} // room → the hub's subscribers

	setSub, syncSub *nats.Subscription
}

// NewPresence returns the Presence of a node, subscribed to the other nodes' sets until Close.
func NewPresence(n *Node) (*Presence, error) {
	p := &Presence{nc: n.nc, id: randomID(), set: n.subject("presence", "set") + ".", sync: n.subject("presence", "sync") + ".",
		own: map[string][]string{}, subs: map[string]map[*func(string, []string)]struct{}{}}
	var err error
	if p.setSub, err = n.nc.Subscribe(p.set+"*", p.receiveSet); err != nil {
		return nil, fmt.Errorf("cluster: subscribe to presence: %w", err)
	}
	if p.syncSub, err = n.nc.Subscribe(p.sync+"*", p.receiveSync); err != nil {
		p.setSub.Unsubscribe()
		return nil, fmt.Errorf("cluster: subscribe to presence: %w", err)
	}
	return p, nil
}

// Publish replaces this node's set of the room, as the other nodes see it.
func (p *Presence) Publish(room string, online []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(online) == 0 {
		delete(p.own, room)
	} else {
		p.own[room] = online
	}
	p.publish(room, online)
}

// publish sends a set. Callers hold p.mu, so that an answer to a sync request cannot overtake
// a newer set of the room.
func (p *Presence) publish(room string, online []string) {
	data, _ := json.Marshal(presenceSet{Node: p.id, Online: online})
	p.nc.Publish(p.set+room, data) // buffered by the connection; lost when it is down
}

// Subscribe registers deliver for the other nodes' sets of the room, and asks them for theirs.
func (p *Presence) Subscribe(room string, deliver func(node string, online []string)) func() {
	key := &deliver
	p.mu.Lock()
	if p.subs[room] == nil {
		p.subs[room] = map[*func(string, []string)]struct{}{}
	}
	p.subs[room][key] = struct{}{}
	p.mu.Unlock()
	p.nc.Publish(p.sync+room, []byte(p.id))
	return func() {
		p.mu.Lock()
		delete(p.subs[room], key)
		if len(p.subs[room]) == 0 {
			delete(p.subs, room)
		}
		p.mu.Unlock()
	}
}

// receiveSet hands another node's set to this node's subscribers of the room. One subscription
// delivers in order, so each node's sets arrive in the order published.
func (p *Presence) receiveSet(m *nats.Msg) {
	var set presenceSet
	if json.Unmarshal(m.Data, &set) != nil || set.Node == p.id {
		return
	}
	room := strings.TrimPrefix(m.Subject, p.set)
	p.mu.Lock()
	defer p.mu.Unlock()
	for deliver := range p.subs[room] {
		(*deliver)(set.Node, set.Online)
	}
}

// receiveSync answers another node's request for the room's sets with this node's, if any.
func (p *Presence) receiveSync(m *nats.Msg) {
	if string(m.Data) == p.id {
		return
	}
	room := strings.TrimPrefix(m.Subject, p.sync)
	p.mu.Lock()
	defer p.mu.Unlock()
	if online := p.own[room]; len(online) > 0 {
		p.publish(room, online)
	}
}

// Close ends the subscriptions.
func (p *Presence) Close() error {
	p.syncSub.Unsubscribe()
	return p.setSub.Unsubscribe()
}

var _ hub.Presence = (*Presence)(nil)
