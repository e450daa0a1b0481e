package hub

import (
	"context"
	"sync"
	"time"
)

// Outbox limits. A room's messages are queued only below the soft limits; past them the member
// falls behind and is fed from storage as its socket drains (room.replay), so a burst costs a
// slow reader nothing but time. Frames that have no copy in storage (acks, errors, joined) may
// go on to the hard limits; past those the client is not reading and is closed with 4008.
// Together with the kernel's send buffer (sendBuffer) this bounds what one socket holds.
const (
	outboxSoftFrames = 1024
	outboxSoftBytes  = 256 << 10
	outboxHardFrames = 2048
	outboxHardBytes  = 512 << 10
	// A replay waits for the outbox to drain below these, leaving room for live frames.
	outboxReplayFrames = outboxSoftFrames / 4
	outboxReplayBytes  = outboxSoftBytes / 2
)

// outbox is a connection's bounded queue of encoded frames. No push ever blocks. A writer
// goroutine runs only while frames wait: the push that finds none running starts one (through
// startWriter), and it ends when it finds the outbox empty. An idle socket has no writer.
type outbox struct {
	startWriter func()

	mu      sync.Mutex
	frames  [][]byte
	bytes   int
	writing bool           // a writer goroutine is running
	space   chan struct{}  // holds a token after the writer took frames
	rooms   map[string]int // room → index in frames of its unsent presence frame
	since   time.Time      // when the oldest stamped frame waiting was queued; zero if none
}

func newOutbox(startWriter func()) *outbox {
	return &outbox{startWriter: startWriter, space: make(chan struct{}, 1)}
}

// offer queues a frame that can be had again from storage (a room's message) or that may be
// lost (typing), and reports false when the outbox is past its soft limits. at, when not zero,
// is when the frame was queued (one clock reading for all of a message's members): the writer
// measures its wake-up from the oldest such stamp waiting.
func (o *outbox) offer(frame []byte, at time.Time) bool {
	return o.offerHeld(frame, at, nil)
}

// offerHeld is offer with the writer's start, if the frame needs one, left to starts.
func (o *outbox) offerHeld(frame []byte, at time.Time, starts *writerStarts) bool {
	o.mu.Lock()
	if len(o.frames) >= outboxSoftFrames || o.bytes+len(frame) > outboxSoftBytes {
		o.mu.Unlock()
		return false
	}
	if o.since.IsZero() {
		o.since = at
	}
	o.addHeld(frame, starts)
	return true
}

// push queues a frame that must reach the client, and reports false when the outbox is past
// its hard limits.
func (o *outbox) push(frame []byte) bool {
	o.mu.Lock()
	if len(o.frames) >= outboxHardFrames || o.bytes+len(frame) > outboxHardBytes {
		o.mu.Unlock()
		return false
	}
	o.add(frame)
	return true
}

// pushPresence queues a room's presence frame in place of the one of that room still waiting,
// if any: the outbox holds at most one presence frame per room, the newest, so presence never
// fills it.
func (o *outbox) pushPresence(room string, frame []byte) {
	o.mu.Lock()
	if i, ok := o.rooms[room]; ok {
		o.bytes += len(frame) - len(o.frames[i])
		o.frames[i] = frame
		o.mu.Unlock()
		return
	}
	if o.rooms == nil {
		o.rooms = map[string]int{}
	}
	o.rooms[room] = len(o.frames)
	o.add(frame)
}

// add queues a frame and starts a writer if none runs. Callers hold o.mu; add releases it.
func (o *outbox) add(frame []byte) { o.addHeld(frame, nil) }

// addHeld is add with the writer's start, if one is needed, handed to starts when not nil.
func (o *outbox) addHeld(frame []byte, starts *writerStarts) {
	o.frames = append(o.frames, frame)
	o.bytes += len(frame)
	start := !o.writing
	o.writing = true
	o.mu.Unlock()
	if start && !starts.hold(o) {
		go o.startWriter()
	}
}

// writerStarts collects the outboxes whose writers a commit's fan-out holds back, and starts
// them all once the commit's messages are queued (start). An outbox held here counts as
// having a writer: frames queued meanwhile wait for it.
type writerStarts struct {
	mu      sync.Mutex
	started bool
	held    []*outbox
}

// hold keeps o's writer for start and reports true, or reports false when the writers were
// started already (or s is nil): the caller starts o's itself.
func (s *writerStarts) hold(o *outbox) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return false
	}
	s.held = append(s.held, o)
	return true
}

// start starts the writers held so far; later holds are refused.
func (s *writerStarts) start() {
	s.mu.Lock()
	held := s.held
	s.held, s.started = nil, true
	s.mu.Unlock()
	for _, o := range held {
		go o.startWriter()
	}
}

// pushPaced queues a frame once the outbox has drained below the replay marks: replay goes at
// the pace of the socket and never fills the outbox.
func (o *outbox) pushPaced(ctx context.Context, frame []byte) error {
	for {
		o.mu.Lock()
		if len(o.frames) == 0 || len(o.frames) < outboxReplayFrames && o.bytes+len(frame) <= outboxReplayBytes {
			o.add(frame)
			return nil
		}
		o.mu.Unlock()
		// Several replays may wait on one token; the tick wakes any that missed it.
		select {
		case <-o.space:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// take removes and returns every queued frame, and when the oldest stamped one was queued
// (zero if none was). When there are none it returns nil and the calling writer must end: the
// next push starts a new one.
func (o *outbox) take() ([][]byte, time.Time) {
	o.mu.Lock()
	frames, since := o.frames, o.since
	o.frames, o.bytes, o.since = nil, 0, time.Time{}
	clear(o.rooms)
	if len(frames) == 0 {
		o.writing = false
	}
	o.mu.Unlock()
	signal(o.space)
	return frames, since
}

// busy reports whether frames wait or are being written.
func (o *outbox) busy() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.writing
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
