package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"kaiwa/shared/proto"
)

// presenceEvery is the least time between two presence frames sent to a room's members: the
// changes in between are coalesced into the next one.
const presenceEvery = time.Second

// A replay reads at most replayPage stored messages, and replayPageBytes of them, at once:
// with the outbox's replay marks, this bounds what a member fed from storage holds in memory.
const (
	replayPage      = 64
	replayPageBytes = 64 << 10
)

// room is one chat room's live state in this process. It exists while it has members: the
// last leave drops it (Hub.release), and the next join loads it again.
type room struct {
	name        string
	h           *Hub
	unsubscribe func()      // from the broker and the presence of other nodes
	dead        atomic.Bool // dropped from the hub: joins must load the room again
	// publishing is held while this node's set of online users is published, so that sets
	// leave in order and each carries the newest. Taken before mu, never while holding it.
	publishing sync.Mutex

	mu       sync.Mutex
	lastSeq  uint64 // the newest seq published to this room
	members  map[*conn]*member
	users    map[string]int       // user name → sockets of theirs in the room
	typingAt map[string]time.Time // user name → when their last typing frame was relayed
	// Presence: the frame of the users online here and on other nodes (nil once they change),
	// when it was last sent to every member, and the timer that sends the changes since, if
	// one is set. remote holds the latest set of every other node; unpublished says that the
	// users online here changed since this node last published them; refresher publishes
	// them again and drops the remote sets gone stale.
	presence      []byte
	presenceSent  time.Time
	presenceTimer *time.Timer
	remote        map[string]remoteSet
	unpublished   bool
	refresher     *time.Timer
}

// remoteSet is another node's set of a room's online users, and when it last came.
type remoteSet struct {
	online []string
	at     time.Time
}

// member is one connection's membership of a room. A member is live when it gets the room's
// messages as they are published. It is not live while a replay feeds it stored messages:
// after a join with "after", and whenever it fell behind (its outbox full). Published messages
// pass it by meanwhile; the replay reads them from the store and turns it live once caught up.
type member struct {
	live      bool
	delivered uint64 // the newest seq sent to this member
	ctx       context.Context
	cancel    context.CancelFunc
}

func (r *room) deliver(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev.Kind {
	case EventMessage:
		r.lastSeq = max(r.lastSeq, ev.Seq)
		sent, at := 0, time.Now()
		for c, m := range r.members {
			if !m.live || ev.Seq <= m.delivered {
				continue
			}
			if !c.out.offerHeld(ev.Frame, at, ev.starts) {
				// Behind: feed it from storage as its socket drains.
				m.live = false
				go r.replay(m.ctx, c, m, m.delivered)
				continue
			}
			m.delivered = ev.Seq
			sent++
		}
		r.h.met.MessagesOut.Add(float64(sent))
	case EventTyping:
		for c := range r.members {
			if c.user.Name != ev.User {
				c.out.offer(ev.Frame, time.Time{}) // typing is worth nothing late: dropped when behind
			}
		}
	}
}

// join makes c a member, and reports false if the room was dropped meanwhile (the caller loads
// it again). Without after, c goes live at once from the room's last seq. With after, the
// messages above it are replayed first, paced by c's socket.
func (r *room) join(c *conn, after *uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dead.Load() {
		return false
	}
	if old := r.members[c]; old != nil {
		old.cancel()
	} else {
		r.users[c.user.Name]++
	}
	ctx, cancel := context.WithCancel(c.ctx)
	m := &member{live: after == nil, delivered: r.lastSeq, ctx: ctx, cancel: cancel}
	if after != nil {
		m.delivered = min(*after, r.lastSeq)
	}
	r.members[c] = m
	c.send(encode(proto.Joined{Type: proto.TypeJoined, Room: r.name, LastSeq: r.lastSeq}))
	if r.users[c.user.Name] == 1 {
		r.changed(true)
	}
	c.out.pushPresence(r.name, r.presenceFrame())
	if !m.live {
		go r.replay(ctx, c, m, m.delivered)
	}
	return true
}

// replay sends c the stored messages above from, then turns m live.
func (r *room) replay(ctx context.Context, c *conn, m *member, from uint64) {
	cursor := from
	for {
		msgs, err := r.h.st.After(r.name, cursor, replayPage, replayPageBytes)
		if err != nil {
			if ctx.Err() == nil && !r.dead.Load() {
				r.h.log.Error("replay_failed", "room", r.name, "err", err)
				c.close(websocketInternalError, "history unavailable")
			}
			return
		}
		for _, msg := range msgs {
			frame, err := messageFrame(msg.JSON)
			if err != nil {
				r.h.log.Error("replay_failed", "room", r.name, "seq", msg.Seq, "err", err)
				c.close(websocketInternalError, "history unavailable")
				return
			}
			if err := c.out.pushPaced(ctx, frame); err != nil {
				return // left the room or disconnected
			}
			cursor = msg.Seq
		}
		r.h.met.MessagesOut.Add(float64(len(msgs)))
		if len(msgs) > 0 {
			continue // until a read finds nothing more: then see whether to turn live
		}
		r.mu.Lock()
		if r.members[c] != m || ctx.Err() != nil {
			r.mu.Unlock()
			return
		}
		if r.lastSeq <= cursor {
			m.live, m.delivered = true, cursor
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}

// storedPrefix starts every stored message: a proto.Message is stored without its type.
var storedPrefix = []byte(`{"room":`)

// messageFrame turns a stored message into its frame, the same bytes as the live one: with
// the type put first, without decoding the message again. A stored form it does not know is
// decoded and encoded.
func messageFrame(stored []byte) ([]byte, error) {
	const typed = `{"type":"` + proto.TypeMessage + `",`
	if bytes.HasPrefix(stored, storedPrefix) {
		return append(append(make([]byte, 0, len(typed)+len(stored)-1), typed...), stored[1:]...), nil
	}
	var msg proto.Message
	if err := json.Unmarshal(stored, &msg); err != nil {
		return nil, err
	}
	msg.Type = proto.TypeMessage
	return encode(msg), nil
}

// leave ends c's membership, if any, and reports whether it had one and whether the room is
// left without members.
func (r *room) leave(c *conn) (left, empty bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.members[c]
	if m == nil {
		return false, len(r.members) == 0
	}
	m.cancel()
	delete(r.members, c)
	if r.users[c.user.Name]--; r.users[c.user.Name] == 0 {
		delete(r.users, c.user.Name)
		delete(r.typingAt, c.user.Name)
		r.changed(true)
	}
	return true, len(r.members) == 0
}

// typing relays that c's user is typing, at most once per proto.TypingEvery, and reports
// false if c is not a member (it was removed from a private room).
func (r *room) typing(c *conn, now time.Time) bool {
	r.mu.Lock()
	if r.members[c] == nil {
		r.mu.Unlock()
		return false
	}
	if now.Sub(r.typingAt[c.user.Name]) < proto.TypingEvery {
		r.mu.Unlock()
		return true
	}
	r.typingAt[c.user.Name] = now
	r.mu.Unlock()
	frame := encode(proto.Typing{Type: proto.TypeTyping, Room: r.name, User: c.user.Name})
	r.h.broker.Publish(r.name, Event{Kind: EventTyping, User: c.user.Name, Frame: frame})
	return true
}

// changed notes that the room's online users changed, here (local) or on another node: every
// member gets the new list now if none was sent within presenceEvery, else once that much has
// passed, with whatever changed until then. Callers hold r.mu.
func (r *room) changed(local bool) {
	r.presence = nil
	r.unpublished = r.unpublished || local
	if r.presenceTimer != nil {
		return // the pending send will carry this change too
	}
	if wait := presenceEvery - time.Since(r.presenceSent); wait > 0 {
		r.presenceTimer = time.AfterFunc(wait, r.sendPresence)
		return
	}
	r.broadcastPresence()
}

func (r *room) sendPresence() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.presenceTimer = nil
	r.broadcastPresence()
}

// broadcastPresence sends every member who is online, and has the users online here
// published to the other nodes if they changed. Callers hold r.mu.
func (r *room) broadcastPresence() {
	r.presenceSent = time.Now()
	if r.unpublished {
		go r.publishPresence(false)
	}
	if len(r.members) == 0 {
		return
	}
	frame := r.presenceFrame()
	for c := range r.members {
		c.out.pushPresence(r.name, frame)
	}
}

// presenceFrame returns the encoded list of the users online, here or on another node.
// Callers hold r.mu.
func (r *room) presenceFrame() []byte {
	if r.presence != nil {
		return r.presence
	}
	online := r.localOnline()
	if len(r.remote) > 0 {
		for _, set := range r.remote {
			online = append(online, set.online...)
		}
		slices.Sort(online)
		online = slices.Compact(online)
	}
	r.presence = encode(proto.Presence{Type: proto.TypePresence, Room: r.name, Online: online})
	return r.presence
}

// localOnline returns the names of the users online here, sorted. Callers hold r.mu.
func (r *room) localOnline() []string {
	online := make([]string, 0, len(r.users))
	for name := range r.users {
		online = append(online, name)
	}
	slices.Sort(online)
	return online
}

// publishPresence publishes the users online here to the other nodes: if they changed since
// the last time, or always with again. It reads them when its turn comes, so the last publish
// carries the newest set whatever the order its callers came in.
func (r *room) publishPresence(again bool) {
	r.publishing.Lock()
	defer r.publishing.Unlock()
	r.mu.Lock()
	if r.dead.Load() || !r.unpublished && !again {
		r.mu.Unlock()
		return // dropped: drop has published that nobody is left
	}
	r.unpublished = false
	online := r.localOnline()
	r.mu.Unlock()
	r.h.presence.Publish(r.name, online)
}

// remotePresence takes another node's set of the room's online users (Presence.Subscribe).
func (r *room) remotePresence(node string, online []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dead.Load() {
		return
	}
	old, had := r.remote[node]
	if len(online) == 0 {
		if !had {
			return
		}
		delete(r.remote, node)
	} else {
		r.remote[node] = remoteSet{online: online, at: time.Now()}
		if had && slices.Equal(old.online, online) {
			return // a refresh
		}
	}
	r.changed(false)
}

// refresh publishes again the users online here, if any, so that the other nodes keep them,
// and drops the sets of other nodes not refreshed within presenceTTLRefreshes periods: those
// of a node that died. It runs every refresh period while the room is in memory.
func (r *room) refresh() {
	r.mu.Lock()
	if r.dead.Load() {
		r.mu.Unlock()
		return
	}
	period := r.h.cfg.PresenceRefresh
	for node, set := range r.remote {
		if time.Since(set.at) > presenceTTLRefreshes*period {
			delete(r.remote, node)
			r.changed(false)
		}
	}
	again := len(r.users) > 0
	r.refresher.Reset(period)
	r.mu.Unlock()
	if again {
		r.publishPresence(true)
	}
}

// drop ends every membership and the room's subscription: the room is gone from the hub. With
// ifEmpty it does so only if the room has no members, and reports whether it did. Callers
// hold the Hub's lock.
func (r *room) drop(ifEmpty bool) bool {
	r.mu.Lock()
	if ifEmpty && len(r.members) > 0 {
		r.mu.Unlock()
		return false
	}
	r.dead.Store(true)
	for _, m := range r.members {
		m.cancel()
	}
	clear(r.members)
	clear(r.users)
	if r.presenceTimer != nil {
		r.presenceTimer.Stop()
	}
	r.refresher.Stop()
	r.mu.Unlock()
	// Outside r.mu: the broker and the presence hold their own locks while they deliver, which
	// take r.mu.
	r.unsubscribe()
	r.publishing.Lock()
	r.h.presence.Publish(r.name, nil)
	r.publishing.Unlock()
	return true
}

// encode marshals a frame. Kaiwa's frames always marshal.
func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("hub: encode frame: " + err.Error())
	}
	return b
}
