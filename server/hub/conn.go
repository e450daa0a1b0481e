package hub

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

// Connection limits and timings.
const (
	maxBadFrames    = 10 // bad frames in a row before 1008
	pingEvery       = 15 * time.Second
	pingTimeout     = 15 * time.Second // with pingEvery and the 5 s close handshake: a silent peer is gone within 35 s
	closeWriteLimit = time.Second      // a close frame not written by then drops the connection
	// maxBatchBytes caps the frames packed into one WebSocket message: 32 KiB is the default
	// read limit of common clients (coder/websocket among them), so batching never breaks one.
	maxBatchBytes = 32 << 10
	// sendBuffer pins the kernel's send buffer of a socket. The outbox is the queue that counts:
	// an autotuned buffer of megabytes would hide a slow reader from it, cost memory per socket,
	// and keep a close frame from being written in time (a blocked write wakes only when a third
	// of the buffer is free).
	sendBuffer = 128 << 10
	// A read frame costs a write transaction: a client sends one a second at most per room it
	// shows, and one per room it has at once when a session opens.
	readRate  = 10
	readBurst = 200
)

// websocketInternalError is the close code for a failure on Kaiwa's side.
const websocketInternalError = 1011

// conn is one authenticated socket. Its reader runs in Serve's goroutine, its writer in
// writeLoop; everything else only pushes to its outbox.
type conn struct {
	h   *Hub
	ws  *websocket.Conn
	raw net.Conn // the hijacked connection, for close deadlines
	out *outbox
	// ctx ends when the connection starts closing: it stops replays, sends and the writer.
	// Reads and writes never use it: cancelling the context of a pending websocket call drops
	// the connection at once, before any close frame.
	ctx    context.Context
	cancel context.CancelFunc

	user proto.User
	sid  string

	closeOnce sync.Once
	pinger    *time.Timer
	written   atomic.Uint64 // WebSocket messages written so far
	// Owned by the pinger: written at its last tick.
	writtenAtPing uint64

	// Owned by the reader. The limiters are made at the first frame each counts: most sockets
	// never send, and an idle one holds none (one made later starts full, as one made at the
	// upgrade would be by then).
	readAt  time.Time // when the frame being handled was read
	joined  map[string]*room
	sends   *rate.Limiter
	joins   *rate.Limiter
	reads   *rate.Limiter
	badRuns int
}

func newConn(h *Hub, ws *websocket.Conn, raw net.Conn) *conn {
	// By interface: the listener's connection caps wrap the *net.TCPConn.
	if tcp, ok := raw.(interface{ SetWriteBuffer(bytes int) error }); ok {
		tcp.SetWriteBuffer(sendBuffer)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		h: h, ws: ws, raw: raw, ctx: ctx, cancel: cancel,
	}
	c.out = newOutbox(c.writeLoop)
	return c
}

// send queues a frame that must reach the client; an outbox past its hard limits closes the
// connection with 4008.
func (c *conn) send(frame []byte) {
	if c.ctx.Err() != nil {
		return
	}
	if !c.out.push(frame) {
		c.close(proto.CloseSlowConsumer, "too slow: messages were not read in time")
	}
}

func (c *conn) sendError(code, message, ref string) {
	c.send(encode(proto.Error{Type: proto.TypeError, Code: code, Message: message, Ref: ref}))
}

// warn queues an error that answers no particular frame (no ref) only while the outbox is below
// its soft limits, and drops it otherwise: a client flooding joins faster than its socket takes
// the answers learns it is limited from the errors already queued, and is not closed for the
// errors its own flood made.
func (c *conn) warn(code, message string) {
	if c.ctx.Err() == nil {
		c.out.offer(encode(proto.Error{Type: proto.TypeError, Code: code, Message: message}), time.Time{})
	}
}

// close ends the connection with a close frame, once. It never blocks: the close handshake
// runs in its own goroutine, and a close frame that cannot be written within closeWriteLimit
// gives way to dropping the connection.
func (c *conn) close(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.cancel()
		if code == proto.CloseSlowConsumer {
			c.h.met.QueueOverflows.Inc() // here, once per socket, however many pushes failed
		}
		if c.raw != nil {
			c.raw.SetWriteDeadline(time.Now().Add(closeWriteLimit))
		}
		go c.ws.Close(code, reason)
	})
}

// readLoop reads and handles frames until the connection ends.
func (c *conn) readLoop() {
	for {
		typ, data, err := c.ws.Read(context.Background())
		c.readAt = time.Now()
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				c.close(proto.CloseMessageTooBig, "message too big")
			}
			c.close(websocket.StatusNormalClosure, "")
			return
		}
		if typ != websocket.MessageText {
			c.bad(proto.CodeBadFrame, "Frames are JSON text messages.", "")
			continue
		}
		if !utf8.Valid(data) {
			c.close(proto.CloseInvalidUTF8, "invalid UTF-8")
			return
		}
		var f proto.Frame
		if err := json.Unmarshal(data, &f); err != nil {
			c.bad(proto.CodeBadFrame, "A frame is one JSON object with a type.", "")
			continue
		}
		c.handle(&f)
	}
}

// bad answers a bad frame and closes with 1008 after maxBadFrames in a row.
func (c *conn) bad(code, message, ref string) {
	c.sendError(code, message, ref)
	if c.badRuns++; c.badRuns >= maxBadFrames {
		c.close(proto.ClosePolicy, "too many bad frames")
	}
}

func (c *conn) handle(f *proto.Frame) {
	if (f.Type == proto.TypeSend || f.Type == proto.TypeEdit || f.Type == proto.TypeDelete) && !allow(&c.sends, proto.SendRate, proto.SendBurst) {
		c.sendError(proto.CodeRateLimited, "Too many messages: slow down.", f.ID)
		return
	}
	if (f.Type == proto.TypeJoin || f.Type == proto.TypeLeave) && !allow(&c.joins, proto.JoinRate, proto.JoinBurst) {
		c.warn(proto.CodeRateLimited, "Too many joins and leaves: slow down.")
		return
	}
	if f.Type == proto.TypeRead && !allow(&c.reads, readRate, readBurst) {
		c.warn(proto.CodeRateLimited, "Too many read markers: slow down.")
		return
	}
	switch f.Type {
	case proto.TypeJoin, proto.TypeLeave, proto.TypeSend, proto.TypeTyping, proto.TypeRead, proto.TypeEdit, proto.TypeDelete:
	case "":
		c.bad(proto.CodeBadFrame, "A frame needs a type.", f.ID)
		return
	default:
		c.bad(proto.CodeUnknownType, "Unknown frame type.", f.ID)
		return
	}
	if !proto.ValidRoomName(f.Room) {
		c.bad(proto.CodeInvalidRoom, "A room name has 1 to 64 of a-z, 0-9 and -.", f.ID)
		return
	}
	switch f.Type {
	case proto.TypeJoin:
		// A private or dm room exists only for its members: to anyone else, it answers as a
		// room never created.
		kind, err := c.h.st.CanRead(c.user.ID, f.Room)
		var rm *room
		if err == nil {
			rm, err = c.h.join(c, f.Room, f.After)
		}
		if err == nil && kind != proto.RoomPublic {
			// Removed between the check and the join? The removal's eviction may have passed
			// before the join: check again now that the socket is a member.
			if _, err = c.h.st.CanRead(c.user.ID, f.Room); err != nil {
				c.h.evict(f.Room, []*conn{c})
			}
		}
		if errors.Is(err, store.ErrNotFound) {
			c.bad(proto.CodeInvalidRoom, "There is no room with that name.", "")
			return
		}
		if err != nil {
			c.h.log.Error("room_load_failed", "room", f.Room, "err", err)
			c.close(websocketInternalError, "room unavailable")
			return
		}
		c.badRuns = 0
		if c.joined == nil {
			c.joined = map[string]*room{}
		}
		c.joined[f.Room] = rm
	case proto.TypeLeave:
		c.badRuns = 0
		rm := c.joined[f.Room]
		delete(c.joined, f.Room)
		if rm == nil {
			c.sendError(proto.CodeNotJoined, "You are not in that room.", "")
			return
		}
		left, empty := rm.leave(c)
		if !left {
			c.sendError(proto.CodeNotJoined, "You are not in that room.", "")
		}
		if empty {
			c.h.release(rm)
		}
	case proto.TypeTyping:
		c.badRuns = 0
		if rm := c.joined[f.Room]; rm == nil || rm.dead.Load() || !rm.typing(c, time.Now()) {
			c.sendError(proto.CodeNotJoined, "You are not in that room.", "")
		}
	case proto.TypeSend:
		if !proto.ValidClientID(f.ID) {
			c.bad(proto.CodeBadFrame, "A send needs an id of 1 to 64 characters.", "")
			return
		}
		if rm := c.joined[f.Room]; rm == nil || rm.dead.Load() {
			delete(c.joined, f.Room) // a room deleted since the join
			c.sendError(proto.CodeNotJoined, "Join the room before sending to it.", f.ID)
			return
		}
		text, ok := c.text(f)
		if !ok {
			return
		}
		c.badRuns = 0
		c.h.enqueue(c, store.AppendRequest{Room: f.Room, UserID: c.user.ID, From: c.user.Name, ClientID: f.ID, Text: text})
	case proto.TypeEdit, proto.TypeDelete:
		// Answered like a send; the store checks the target and the right to change it in the
		// commit's transaction, where it reads the target anyway.
		if !proto.ValidClientID(f.ID) {
			c.bad(proto.CodeBadFrame, "An edit or deletion needs an id of 1 to 64 characters.", "")
			return
		}
		if rm := c.joined[f.Room]; rm == nil || rm.dead.Load() {
			delete(c.joined, f.Room)
			c.sendError(proto.CodeNotJoined, "Join the room before changing its messages.", f.ID)
			return
		}
		kind, text := proto.KindDelete, ""
		if f.Type == proto.TypeEdit {
			kind = proto.KindEdit
			var ok bool
			if text, ok = c.text(f); !ok {
				return
			}
		}
		c.badRuns = 0
		c.h.enqueue(c, store.AppendRequest{Room: f.Room, UserID: c.user.ID, From: c.user.Name, ClientID: f.ID, Text: text,
			Kind: kind, Target: f.Target})
	case proto.TypeRead:
		err := c.h.markRead(c, f.Room, f.Seq)
		switch {
		case errors.Is(err, store.ErrNotFound):
			c.bad(proto.CodeInvalidRoom, "There is no room with that name.", "")
		case errors.Is(err, store.ErrNotMember):
			c.badRuns = 0
			c.sendError(proto.CodeNotJoined, "Only a member of a room has a read marker in it.", "")
		case err != nil:
			c.h.log.Error("read_marker_failed", "room", f.Room, "err", err)
			c.sendError(proto.CodeUnavailable, "The read marker could not be stored; retry later.", "")
		default:
			c.badRuns = 0
		}
	}
}

// allow takes a token from the limiter *l, making it with rate r and burst b if it is nil.
func allow(l **rate.Limiter, r rate.Limit, b int) bool {
	if *l == nil {
		*l = rate.NewLimiter(r, b)
	}
	return (*l).Allow()
}

// writeLoop writes queued frames, several to a message, until the outbox is empty.
//
// Writes carry no timeout of their own: a peer that stops reading is found by the pinger and
// closed with 4008 (or fills its outbox first), one that vanishes fails its ping, and either
// way close bounds the pending write with a deadline on the connection.
func (c *conn) writeLoop() {
	var buf *[]byte // from joinPool, while this writer joins frames
	defer func() {
		if buf != nil {
			putJoin(buf)
		}
	}()
	met := c.h.met
	for {
		frames, since := c.out.take()
		if frames == nil {
			return
		}
		took := time.Now()
		if !since.IsZero() {
			met.StageWake.Observe(took.Sub(since).Seconds())
		}
		for len(frames) > 0 {
			if c.ctx.Err() != nil {
				return // closing: the close frame comes next
			}
			msg := frames[0]
			n := 1
			if len(frames) > 1 {
				if buf == nil {
					buf = joinPool.Get().(*[]byte)
				}
				b := append((*buf)[:0], frames[0]...)
				for ; n < len(frames) && len(b)+1+len(frames[n]) <= maxBatchBytes; n++ {
					b = append(append(b, '\n'), frames[n]...)
				}
				*buf, msg = b, b
			}
			frames = frames[n:]
			if err := c.ws.Write(context.Background(), websocket.MessageText, msg); err != nil {
				c.close(websocket.StatusGoingAway, "write failed")
				return
			}
			wrote := time.Now()
			met.StageWrite.Observe(wrote.Sub(took).Seconds())
			took = wrote
			c.written.Add(1)
		}
	}
}

// startPings pings the peer every pingEvery from a timer: no goroutine waits in between. The
// first ping comes at a random point of the second half of the interval: sockets opened
// together (every client of a restarted server, say) would otherwise ping together for as
// long as they live.
func (c *conn) startPings() {
	c.pinger = time.AfterFunc(pingEvery/2+rand.N(pingEvery/2), c.ping)
}

// ping checks that the peer reads and pings an idle one. A peer with frames waiting:
//   - that has had nothing written to it since the last tick has stopped reading, and is
//     closed with 4008;
//   - that has had a message written since is reading, however slowly: that is proof enough
//     that it is there, and a ping would queue behind the data (coder/websocket drops a connection whose control frame
//     waits more than 5 s to be written).
//
// An idle peer is pinged, and closed if it does not answer within pingTimeout.
func (c *conn) ping() {
	wrote, busy := c.progress()
	switch {
	case busy && !wrote:
		c.close(proto.CloseSlowConsumer, "too slow: messages were not read")
		return
	case busy:
		c.pinger.Reset(pingEvery)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	err := c.ws.Ping(ctx)
	if c.ctx.Err() != nil {
		return
	}
	if err != nil {
		// Frames may have come meanwhile, with the pong behind them.
		switch wrote, busy := c.progress(); {
		case busy && !wrote:
			c.close(proto.CloseSlowConsumer, "too slow: messages were not read")
			return
		case !wrote:
			c.close(websocket.StatusPolicyViolation, "no pong")
			return
		}
	}
	c.pinger.Reset(pingEvery)
}

// progress reports whether a message was written since the last call, and whether frames
// wait or are being written. Only the pinger calls it.
func (c *conn) progress() (wrote, busy bool) {
	written := c.written.Load()
	wrote, c.writtenAtPing = written != c.writtenAtPing, written
	return wrote, c.out.busy()
}

// text returns the frame's text normalised, or answers the frame with the text's error.
func (c *conn) text(f *proto.Frame) (string, bool) {
	text, code := proto.NormalizeText(f.Text)
	switch code {
	case proto.CodeEmptyText:
		c.sendError(code, "The message is empty.", f.ID)
		return "", false
	case proto.CodeTextTooLong:
		c.sendError(code, "A message has at most 4000 characters.", f.ID)
		return "", false
	}
	return text, true
}
