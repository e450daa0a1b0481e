package hub

import (
	"context"
	"sync"
	"time"
)

// Outbox limits: a member that lets more than this pile up is too slow and is closed with 4008.
const (
	outboxMaxFrames = 1024
	outboxMaxBytes  = 1 << 20
	// Replay waits for the outbox to be below this, leaving room for live frames.
	outboxReplayFrames = outboxMaxFrames / 4
)

// outbox is a connection's bounded queue of encoded frames. push never blocks. A writer
// goroutine runs only while frames wait: the push that finds none running starts one (through
// startWriter), and it ends when it finds the outbox empty. An idle socket has no writer.
type outbox struct {
	startWriter func()

	mu      sync.Mutex
	frames  [][]byte
	bytes   int
	writing bool          // a writer goroutine is running
	space   chan struct{} // holds a token after the writer took frames
}

func newOutbox(startWriter func()) *outbox {
	return &outbox{startWriter: startWriter, space: make(chan struct{}, 1)}
}

// push queues a frame, or reports false when the outbox is full.
func (o *outbox) push(frame []byte) bool {
	o.mu.Lock()
	if len(o.frames) >= outboxMaxFrames || o.bytes+len(frame) > outboxMaxBytes {
		o.mu.Unlock()
		return false
	}
	o.add(frame)
	return true
}

// add queues a frame and starts a writer if none runs. Callers hold o.mu; add releases it.
func (o *outbox) add(frame []byte) {
	o.frames = append(o.frames, frame)
	o.bytes += len(frame)
	start := !o.writing
	o.writing = true
	o.mu.Unlock()
	if start {
		go o.startWriter()
	}
}

// pushPaced queues a frame once the outbox has drained below the replay mark: replay goes at
// the pace of the socket and never fills the outbox.
func (o *outbox) pushPaced(ctx context.Context, frame []byte) error {
	for {
		o.mu.Lock()
		if len(o.frames) < outboxReplayFrames && o.bytes+len(frame) <= outboxMaxBytes/4 {
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

// take removes and returns every queued frame. When there are none it returns nil and the
// calling writer must end: the next push starts a new one.
func (o *outbox) take() [][]byte {
	o.mu.Lock()
	frames := o.frames
	o.frames, o.bytes = nil, 0
	if len(frames) == 0 {
		o.writing = false
	}
	o.mu.Unlock()
	signal(o.space)
	return frames
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
