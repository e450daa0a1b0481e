package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	bolterrors "go.etcd.io/bbolt/errors"

	"kaiwa/server/store"
)

// Errors callers branch on.
var (
	// ErrUnavailable: the operation could not be stored in JetStream, or not applied, in time.
	// It may still be applied later.
	ErrUnavailable = fmt.Errorf("cluster: jetstream: %w", store.ErrUnavailable)
	// ErrStopped: the node's applier has stopped (its cache failed, or the engine is closed).
	ErrStopped = errors.New("cluster: applier stopped")
	// ErrContended: a compare-and-swap lost to other nodes too many times in a row.
	ErrContended = errors.New("cluster: update contended")
	// ErrBadOp: an operation in the log could not be decoded; every node refuses it alike.
	ErrBadOp = errors.New("cluster: malformed operation")
	// ErrSelfWait: a mutation or Barrier was called by the applier itself (by the Observer): it
	// would wait for itself.
	ErrSelfWait = errors.New("cluster: the applier cannot wait for itself")
)

const (
	// proposeTimeout bounds a mutation: its publication and its application by this node.
	proposeTimeout = 30 * time.Second
	// barrierTimeout bounds the catching up of a read that missed.
	barrierTimeout = 5 * time.Second
	// swapAttempts bounds the retries of UpdateSession and UpdateUser against other nodes.
	swapAttempts = 10
	// maxArgsBytes is the largest encoding of an operation's arguments, under MaxOpBytes with
	// room for the envelope.
	maxArgsBytes = MaxOpBytes - 4<<10
)

// Engine is the store of a Kaiwa node in cluster mode. Reads come from the embedded local cache,
// a bbolt file in the single-process format; every mutation is an operation appended to the
// JetStream stream, which every node's applier applies, in stream order, to its own cache by
// calling the same *store.Store method. Per-room seqs, user ids and the outcome of every
// compare-and-swap are thus the same on every node. A mutation returns once this node has
// applied its operation, with the values the store call returned.
//
// The store's Observer is called by the applier goroutine for every operation applied, whichever
// node proposed it. It may read; a mutation it calls fails with ErrSelfWait (it would wait for
// the applier it runs on), and its reads that miss do not wait for the cache to catch up. All
// methods may be called concurrently.
type Engine struct {
	*store.Store
	node *Node
	id   string // this process's proposer id, random
	log  *slog.Logger

	mu       sync.Mutex
	applied  uint64 // the last stream seq applied, including operations that failed
	resumed  uint64 // the cache's applied seq when opened
	progress chan struct{}
	waiters  map[string]chan outcome
	failErr  error         // why the applier stopped
	failed   chan struct{} // closed when the applier stops

	stop    context.CancelFunc
	done    chan struct{}
	applier atomic.Uint64 // the applier's goroutine id (goroutineID)

	closeOnce sync.Once
	closeErr  error
}

type outcome struct {
	v   any
	err error
}

// op is one operation in the stream.
type op struct {
	ID   string          `json:"id"`   // random; also the message id JetStream deduplicates on
	Node string          `json:"node"` // the proposer
	Now  int64           `json:"now"`  // the proposer's time, unix ms: the time the store records
	Kind string          `json:"kind"`
	Args json.RawMessage `json:"args"`
}

// Open opens (creating if needed) the cache at path and starts applying the stream to it from
// the cache's applied seq + 1. A new cluster gets its signing key from the first node's init
// operation. Open returns once the cache holds it and has applied every operation stored
// before Open was called, or when ctx ends.
func Open(ctx context.Context, node *Node, path string, log *slog.Logger) (*Engine, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := store.OpenEmpty(path)
	if err != nil {
		return nil, err
	}
	applied, err := st.AppliedSeq()
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("cluster: applied seq: %w", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	e := &Engine{
		Store: st, node: node, id: randomID(), log: log,
		applied: applied, resumed: applied, progress: make(chan struct{}),
		waiters: map[string]chan outcome{}, failed: make(chan struct{}),
		stop: stop, done: make(chan struct{}),
	}
	go e.run(runCtx)
	if err := e.initialize(ctx); err != nil {
		e.Close()
		return nil, err
	}
	// A node back after a while serves once it has caught up, not from a stale cache.
	if err := e.Barrier(ctx); err != nil {
		e.Close()
		return nil, fmt.Errorf("cluster: catch up: %w", err)
	}
	return e, nil
}

// initialize proposes the init operation when the stream is empty (only the first proposal is
// stored: it expects last seq 0) and waits for the cache to hold a signing key.
func (e *Engine) initialize(ctx context.Context) error {
	for {
		if e.SigningKey() != nil {
			return nil
		}
		last, err := e.node.LastSeq(ctx)
		if err == nil && last == 0 {
			data, _ := json.Marshal(op{ID: randomID(), Node: e.id, Now: time.Now().UnixMilli(), Kind: kindInit,
				Args: mustJSON(keyArgs{Key: newKey()})})
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			// Another node's init may win: then this one is refused, and theirs is applied.
			_, err = e.node.js.Publish(pctx, e.node.subject("ops"), data, jetstream.WithExpectLastSequence(0))
			cancel()
		}
		if err != nil {
			e.log.Info("cluster_init_retry", slog.Any("err", err))
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = e.waitApplied(wctx, max(last, 1))
		cancel()
		if ctx.Err() != nil {
			return fmt.Errorf("cluster: initialize: %w", ctx.Err())
		}
		if errors.Is(err, ErrStopped) {
			return err
		}
	}
}

// Close stops the applier and closes the cache. It does not close the node. Calls after the
// first do nothing.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		e.stop()
		<-e.done
		e.closeErr = e.Store.Close()
	})
	return e.closeErr
}

// Applied returns the last stream seq this node applied.
func (e *Engine) Applied() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.applied
}

// Node returns the node the engine stores through.
func (e *Engine) Node() *Node { return e.node }

// ResumedFrom returns the applied seq the cache had when the engine opened it: the engine
// applied the stream from the next one on.
func (e *Engine) ResumedFrom() uint64 { return e.resumed }

// Healthy returns nil while the applier runs and JetStream answers within ctx.
func (e *Engine) Healthy(ctx context.Context) error {
	select {
	case <-e.failed:
		return e.failErr
	default:
	}
	if e.node.nc.Status() != nats.CONNECTED {
		return fmt.Errorf("%w: connection %s", ErrUnavailable, e.node.nc.Status())
	}
	if _, err := e.node.LastSeq(ctx); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// Barrier waits until this node has applied every operation stored before the call. The
// Observer runs on the applier: Barrier called there returns ErrSelfWait at once.
func (e *Engine) Barrier(ctx context.Context) error {
	if goroutineID() == e.applier.Load() {
		return ErrSelfWait
	}
	last, err := e.node.LastSeq(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return e.waitApplied(ctx, last)
}

// caughtUp runs a barrier for a read that missed and reports whether the cache has caught up,
// so that the read is worth trying again.
func (e *Engine) caughtUp() bool {
	ctx, cancel := context.WithTimeout(context.Background(), barrierTimeout)
	defer cancel()
	return e.Barrier(ctx) == nil
}

func (e *Engine) waitApplied(ctx context.Context, seq uint64) error {
	for {
		e.mu.Lock()
		applied, progress := e.applied, e.progress
		e.mu.Unlock()
		if applied >= seq {
			return nil
		}
		select {
		case <-progress:
		case <-e.failed:
			return e.failErr
		case <-ctx.Done():
			return fmt.Errorf("%w: applied %d of %d: %v", ErrUnavailable, applied, seq, ctx.Err())
		}
	}
}

// propose appends an operation to the stream and returns the values this node's applier got
// from the store when applying it.
func (e *Engine) propose(kind string, args any) (any, error) {
	if goroutineID() == e.applier.Load() {
		return nil, fmt.Errorf("%w: %s from the Observer", ErrSelfWait, kind)
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("cluster: encode %s: %w", kind, err)
	}
	o := op{ID: randomID(), Node: e.id, Now: time.Now().UnixMilli(), Kind: kind, Args: raw}
	data, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("cluster: encode %s: %w", kind, err)
	}
	if len(data) > MaxOpBytes-1<<10 {
		return nil, fmt.Errorf("cluster: %s of %d bytes: too large", kind, len(data))
	}
	ch := make(chan outcome, 1)
	e.mu.Lock()
	e.waiters[o.ID] = ch
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.waiters, o.ID)
		e.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), proposeTimeout)
	defer cancel()
	if err := e.publish(ctx, o.ID, data); err != nil {
		return nil, err
	}
	select {
	case out := <-ch:
		return out.v, out.err
	case <-e.failed:
		return nil, e.failErr
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %s not applied: %v", ErrUnavailable, kind, ctx.Err())
	}
}

// publish stores data in the stream, trying again until ctx ends when the answer is lost: the
// message id makes JetStream store it once.
func (e *Engine) publish(ctx context.Context, id string, data []byte) error {
	for {
		// Short attempts: a leader lost with the request never answers it; a retry goes to the
		// next leader, and the message id keeps a stored message from being stored twice.
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := e.node.js.Publish(actx, e.node.subject("ops"), data, jetstream.WithMsgID(id))
		cancel()
		var apiErr *jetstream.APIError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &apiErr):
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// run applies the stream to the cache, in order, from the applied seq + 1, until the engine
// is closed or the cache fails.
func (e *Engine) run(ctx context.Context) {
	defer close(e.done)
	e.applier.Store(goroutineID())
	for ctx.Err() == nil {
		err := e.consume(ctx)
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, errCache) {
			e.fail(err)
			return
		}
		e.log.Warn("cluster_consumer_restart", slog.Any("err", err))
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	e.fail(ErrStopped)
}

var errCache = errors.New("cluster: cache failed")

// consume runs one ordered consumer from the applied seq + 1 and applies what it delivers.
// An ordered consumer recreates itself across reconnections and never skips a message.
func (e *Engine) consume(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	cons, err := e.node.stream.OrderedConsumer(cctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   e.Applied() + 1,
	})
	cancel()
	if err != nil {
		return err
	}
	// Frequent heartbeats: when the server holding the consumer dies, the consumer is made
	// again elsewhere within seconds, and every write waits for it meanwhile.
	it, err := cons.Messages(jetstream.PullExpiry(5*time.Second), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return err
	}
	stopped := context.AfterFunc(ctx, it.Stop)
	defer stopped()
	defer it.Stop()
	watchCtx, endWatch := context.WithCancel(ctx)
	defer endWatch()
	go e.watchStall(watchCtx, it.Stop)
	for {
		msg, err := it.Next()
		if err != nil {
			return err
		}
		md, err := msg.Metadata()
		if err != nil {
			return err
		}
		seq, applied := md.Sequence.Stream, e.Applied()
		switch {
		case seq <= applied:
			continue
		case seq != applied+1:
			return fmt.Errorf("cluster: stream seq %d after %d", seq, applied)
		}
		if err := e.applyMsg(seq, msg.Data()); err != nil {
			return err
		}
	}
}

// stallAfter is how long the applier may make no progress while the stream holds operations
// it has not applied before watchStall makes a new consumer.
const stallAfter = 5 * time.Second

// watchStall calls stop when the stream is known to be ahead of what this node applied and
// nothing was applied for stallAfter: a consumer that survived the loss of the server holding
// it can stay silent without an error (its heartbeats answered, its deliveries gone), and
// every write through this node would wait for it. A new consumer starts from the applied seq
// + 1, so nothing is skipped or applied twice.
func (e *Engine) watchStall(ctx context.Context, stop func()) {
	tick := time.NewTicker(stallAfter / 5)
	defer tick.Stop()
	e.mu.Lock()
	progress, since := e.progress, time.Now()
	e.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-progress:
			e.mu.Lock()
			progress, since = e.progress, time.Now()
			e.mu.Unlock()
			continue
		case <-tick.C:
		}
		if time.Since(since) < stallAfter {
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, stallAfter/5)
		last, err := e.node.LastSeq(ictx)
		cancel()
		if err != nil || last <= e.Applied() {
			// JetStream busy electing, or nothing to apply: look again a stallAfter later,
			// so that an idle node asks once per stallAfter, not at every tick.
			since = time.Now()
			continue
		}
		e.log.Warn("cluster_consumer_stalled", slog.Uint64("applied", e.Applied()), slog.Uint64("stream_last", last))
		stop()
		return
	}
}

// applyMsg applies the operation at seq and hands its outcome to its proposer if waiting here.
// A refusal by the store (not found, taken, forbidden...) is the same on every node and is the
// operation's outcome; any other error means the cache failed, and the applier stops rather
// than skip an operation.
func (e *Engine) applyMsg(seq uint64, data []byte) error {
	var o op
	var out outcome
	if err := json.Unmarshal(data, &o); err != nil {
		out.err = fmt.Errorf("%w: seq %d: %v", ErrBadOp, seq, err)
	} else {
		out = e.apply(o, seq)
		if out.err != nil && !refusal(out.err) {
			return fmt.Errorf("%w: seq %d (%s): %v", errCache, seq, o.Kind, out.err)
		}
	}
	e.mu.Lock()
	e.applied = seq
	close(e.progress)
	e.progress = make(chan struct{})
	ch := e.waiters[o.ID]
	if o.Node != e.id {
		ch = nil
	}
	e.mu.Unlock()
	if ch != nil {
		ch <- out
	}
	return nil
}

// refusals are the store's errors that depend only on the state the log built and on the
// operation, so every node meets them alike: the store's own, and bbolt's refusals of a key or
// value it cannot hold.
var refusals = []error{store.ErrNotFound, store.ErrUsernameTaken, store.ErrRoomExists, store.ErrForbidden,
	store.ErrNotMember, store.ErrNotAllowed, store.ErrInvalidTarget, store.ErrDisabled, ErrBadOp,
	bolterrors.ErrKeyRequired, bolterrors.ErrKeyTooLarge, bolterrors.ErrValueTooLarge,
	bolterrors.ErrIncompatibleValue, bolterrors.ErrBucketExists, bolterrors.ErrBucketNotFound,
	bolterrors.ErrBucketNameRequired}

func refusal(err error) bool {
	for _, r := range refusals {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}

func (e *Engine) fail(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	select {
	case <-e.failed:
		return
	default:
	}
	if !errors.Is(err, ErrStopped) {
		e.log.Error("cluster_applier_stopped", slog.Any("err", err))
		err = fmt.Errorf("%w: %v", ErrStopped, err)
	}
	e.failErr = err
	close(e.failed)
}

// goroutineID returns the id of the calling goroutine, from the first line of its stack
// ("goroutine 42 [running]:"). Go offers nothing better to tell the applier's own calls (its
// Observer reading the store) from other goroutines'; only reads that miss and barriers ask,
// and it costs about a microsecond.
func goroutineID() uint64 {
	var buf [64]byte
	b := bytes.TrimPrefix(buf[:runtime.Stack(buf[:], false)], []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, _ := strconv.ParseUint(string(b), 10, 64)
	return id
}

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newKey() []byte {
	key := make([]byte, 32)
	rand.Read(key)
	return key
}

func mustJSON(v any) json.RawMessage {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return data
}
