package cluster

import (
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"

	"kaiwa/server/hub"
)

// Headers of a relayed typing event.
const (
	headerNode = "Kaiwa-Node"
	headerUser = "Kaiwa-User"
)

// Broker is the hub's Broker on a cluster node. Messages stay within the node: every node's
// applier publishes every message to its own sockets (through the store's Observer), so
// relaying them would deliver them twice. Typing, which is never stored, goes to every node over
// NATS core, at most once: a typing event lost while a node reconnects is not worth more. One
// subscription per node carries the typing of every room. Its methods may be called
// concurrently.
type Broker struct {
	local *hub.LocalBroker
	nc    *nats.Conn
	id    string
	// typing prefixes the NATS core subjects that carry typing between nodes, one per room:
	// kaiwa.typing.ROOM (room names are a-z 0-9 -, valid subject tokens).
	typing string
	sub    *nats.Subscription
}

// NewBroker returns the Broker of a node, subscribed to the other nodes' typing until Close.
func NewBroker(n *Node) (*Broker, error) {
	b := &Broker{local: hub.NewLocalBroker(), nc: n.nc, id: randomID(), typing: n.subject("typing") + "."}
	sub, err := n.nc.Subscribe(b.typing+"*", b.receive)
	if err != nil {
		return nil, fmt.Errorf("cluster: subscribe to typing: %w", err)
	}
	b.sub = sub
	return b, nil
}

// Publish hands ev to this node's subscribers of the room and, for typing, to the other nodes.
func (b *Broker) Publish(room string, ev hub.Event) {
	b.local.Publish(room, ev)
	if ev.Kind != hub.EventTyping {
		return
	}
	msg := nats.NewMsg(b.typing + room)
	msg.Header.Set(headerNode, b.id)
	msg.Header.Set(headerUser, ev.User)
	msg.Data = ev.Frame
	b.nc.PublishMsg(msg) // buffered by the connection, also while it reconnects
}

// Subscribe registers deliver for the room's events on this node.
func (b *Broker) Subscribe(room string, deliver func(hub.Event)) func() {
	return b.local.Subscribe(room, deliver)
}

// receive hands another node's typing to this node's subscribers of the room.
func (b *Broker) receive(m *nats.Msg) {
	if m.Header.Get(headerNode) == b.id {
		return
	}
	room := strings.TrimPrefix(m.Subject, b.typing)
	b.local.Publish(room, hub.Event{Kind: hub.EventTyping, User: m.Header.Get(headerUser), Frame: m.Data})
}

// Close ends the subscription.
func (b *Broker) Close() error { return b.sub.Unsubscribe() }
