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

// outbox is a connection's bounded queue of encoded frames. push never blocks; the writer
// takes everything queued at once and writes it as one WebSocket message.
type outbox struct {
	mu     sync.Mutex
	frames [][]byte
	bytes  int
	notify chan struct{} // holds a token while frames wait for the writer
	space  chan struct{} // holds a token after the writer took frames
}

func newOutbox() *outbox {
	return &outbox{notify: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

// push queues a frame, or reports false when the outbox is full.
func (o *outbox) push(frame []byte) bool {
	o.mu.Lock()
	if len(o.frames) >= outboxMaxFrames || o.bytes+len(frame) > outboxMaxBytes {
		o.mu.Unlock()
		return false
	}
	o.frames = append(o.frames, frame)
	o.bytes += len(frame)
	o.mu.Unlock()
	signal(o.notify)
	return true
}

// pushPaced queues a frame once the outbox has drained below the replay mark: replay goes at
// the pace of the socket and never fills the outbox.
func (o *outbox) pushPaced(ctx context.Context, frame []byte) error {
	for {
		o.mu.Lock()
		if len(o.frames) < outboxReplayFrames && o.bytes+len(frame) <= outboxMaxBytes/4 {
			o.frames = append(o.frames, frame)
			o.bytes += len(frame)
			o.mu.Unlock()
			signal(o.notify)
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

// take removes and returns every queued frame.
func (o *outbox) take() [][]byte {
	o.mu.Lock()
	frames := o.frames
	o.frames, o.bytes = nil, 0
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
