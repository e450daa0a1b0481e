package hub

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"kaiwa/shared/proto"
	"sync"
)

// typingEvery is the least time between two typing frames relayed for one user in one room.
const typingEvery = 2 * time.Second

// replayPage is how many stored messages a replay reads at once.
const replayPage = 256

// room is one chat room's live state in this process.
type room struct {
	name        string
	h           *Hub
	unsubscribe func()

	mu       sync.Mutex
	lastSeq  uint64 // the newest seq published to this room
	members  map[*conn]*member
	users    map[string]int       // user name → sockets of theirs in the room
	typingAt map[string]time.Time // user name → when their last typing frame was relayed
}

// member is one connection's membership of a room. A member that joined with "after" is not
// live until its replay has caught up; until then published messages pass it by (the replay
// reads them from the store).
type member struct {
	live      bool
	delivered uint64 // the newest seq sent to this member
	cancel    context.CancelFunc
}

func (r *room) deliver(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev.Kind {
	case EventMessage:
		r.lastSeq = max(r.lastSeq, ev.Seq)
		sent := 0
		for c, m := range r.members {
			if !m.live || ev.Seq <= m.delivered {
				continue
			}
			m.delivered = ev.Seq
			c.send(ev.Frame)
			sent++
		}
		r.h.met.MessagesOut.Add(float64(sent))
	case EventTyping:
		for c := range r.members {
			if c.user.Name != ev.User {
				c.send(ev.Frame)
			}
		}
	}
}

// join makes c a member. Without after, c goes live at once from the room's last seq. With
// after, the messages above it are replayed first, paced by c's socket.
func (r *room) join(c *conn, after *uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.members[c]; old != nil {
		old.cancel()
	} else {
		r.users[c.user.Name]++
	}
	ctx, cancel := context.WithCancel(c.ctx)
	m := &member{live: after == nil, delivered: r.lastSeq, cancel: cancel}
	if after != nil {
		m.delivered = min(*after, r.lastSeq)
	}
	r.members[c] = m
	c.send(encode(proto.Joined{Type: proto.TypeJoined, Room: r.name, LastSeq: r.lastSeq}))
	if r.users[c.user.Name] == 1 {
		r.presence()
	} else {
		c.send(r.presenceFrame())
	}
	if !m.live {
		go r.replay(ctx, c, m, m.delivered)
	}
}

// replay sends c the stored messages above from, then turns m live.
func (r *room) replay(ctx context.Context, c *conn, m *member, from uint64) {
	cursor := from
	for {
		msgs, _, err := r.h.st.Page(r.name, nil, &cursor, replayPage)
		if err != nil {
			r.h.log.Error("replay_failed", "room", r.name, "err", err)
			c.close(websocketInternalError, "history unavailable")
			return
		}
		for _, msg := range msgs {
			msg.Type = proto.TypeMessage
			if err := c.out.pushPaced(ctx, encode(msg)); err != nil {
				return // left the room or disconnected
			}
			cursor = msg.Seq
		}
		r.h.met.MessagesOut.Add(float64(len(msgs)))
		if len(msgs) == replayPage {
			continue
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

// leave ends c's membership, if any, and reports whether it had one.
func (r *room) leave(c *conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.members[c]
	if m == nil {
		return false
	}
	m.cancel()
	delete(r.members, c)
	if r.users[c.user.Name]--; r.users[c.user.Name] == 0 {
		delete(r.users, c.user.Name)
		delete(r.typingAt, c.user.Name)
		r.presence()
	}
	return true
}

func (r *room) isMember(c *conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.members[c] != nil
}

// typing relays that c's user is typing, at most once per typingEvery.
func (r *room) typing(c *conn, now time.Time) {
	r.mu.Lock()
	if r.members[c] == nil || now.Sub(r.typingAt[c.user.Name]) < typingEvery {
		r.mu.Unlock()
		return
	}
	r.typingAt[c.user.Name] = now
	r.mu.Unlock()
	frame := encode(proto.Typing{Type: proto.TypeTyping, Room: r.name, User: c.user.Name})
	r.h.broker.Publish(r.name, Event{Kind: EventTyping, User: c.user.Name, Frame: frame})
}

// presence sends every member who is online. Callers hold r.mu.
func (r *room) presence() {
	frame := r.presenceFrame()
	for c := range r.members {
		c.send(frame)
	}
}

func (r *room) presenceFrame() []byte {
	online := make([]string, 0, len(r.users))
	for name := range r.users {
		online = append(online, name)
	}
	slices.Sort(online)
	return encode(proto.Presence{Type: proto.TypePresence, Room: r.name, Online: online})
}

// encode marshals a frame. Kaiwa's frames always marshal.
func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("hub: encode frame: " + err.Error())
	}
	return b
}
