package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"kaiwa/server/store"
)

// kindRestore writes raw content of a database into the cache as it is (store.Store.Restore):
// an import is a run of them, the first with Reset.
const kindRestore = "restore"

type restoreArgs struct {
	Reset   bool        `json:"reset,omitempty"`
	Entries []store.Raw `json:"entries"`
}

// ErrNotEmpty refuses an import into a cluster that holds more than its init operation.
var ErrNotEmpty = errors.New("cluster: the cluster already holds data")

// importChunkBytes bounds the raw bytes of one restore operation's entries: base64 in JSON
// makes them a third larger, and the whole stays under maxArgsBytes.
const importChunkBytes = 512 << 10

// Imported says what an import stored.
type Imported struct {
	Entries     int    // buckets and key-value pairs copied
	Ops         int    // restore operations stored
	First, Last uint64 // their stream seqs
	// KeptKey: the cluster was initialised, and kept its signing key; access tokens signed by
	// the single process no longer verify (clients refresh silently, their sessions came over).
	KeptKey bool
}

// Import copies the whole content of src, a single-process database, into the cluster of node:
// every user, session, room, membership, read marker, message (seqs unchanged), certificate
// and the signing key, so that the cluster goes on where the single process stopped. Every
// node's applier writes it into its cache as it is.
//
// The cluster must be empty: its stream holds nothing, or only the init operation of the first
// node that started (nobody can have signed in yet). In an empty cluster the signing key comes
// over too, last, so that a node started during the import waits for its end before it serves.
// In an initialised one the cluster keeps its signing key, which running nodes hold (KeptKey).
// The first restore operation empties each cache but for the signing key, init's room
// included; the operations follow one another with nothing else between (each expects the
// last one's seq). Anything else in the
// stream is refused with ErrNotEmpty. An import cut short leaves a partial copy in the stream,
// which a second import refuses: start again from a new cluster.
func Import(ctx context.Context, node *Node, src *store.Store) (Imported, error) {
	var im Imported
	var chunk []store.Raw
	size := 0
	// flush stores the entries gathered so far as one restore operation.
	flush := func() error {
		var seq uint64
		var err error
		if im.Ops == 0 {
			seq, err = importFirst(ctx, node, func(initialised bool) ([]byte, error) {
				im.KeptKey = initialised
				return restoreOp(true, chunk, initialised)
			})
			im.First = seq
		} else {
			var data []byte
			if data, err = restoreOp(false, chunk, im.KeptKey); err == nil {
				seq, err = publishAfter(ctx, node, data, im.Last)
			}
		}
		if err != nil {
			return err
		}
		im.Ops, im.Last = im.Ops+1, seq
		chunk, size = nil, 0
		return nil
	}
	err := src.Dump(func(r store.Raw) error {
		n := 64 + len(r.Key) + len(r.Value)
		for _, p := range r.Path {
			n += len(p) + 8
		}
		if n > importChunkBytes {
			return fmt.Errorf("cluster: import: entry %q/%q of %d bytes: too large for one operation", r.Path, r.Key, n)
		}
		if size+n > importChunkBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		chunk, size = append(chunk, r), size+n
		im.Entries++
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil && im.Ops > 0 {
		err = fmt.Errorf("%w (the stream holds %d restore operations of an unfinished import: import again into a new cluster)", err, im.Ops)
	}
	return im, err
}

// importFirst stores the first restore operation, made by encode once the stream is found
// empty or holding only the init operation (initialised), and returns its seq. A node's init
// may land between the check and the publication: then the check runs again.
func importFirst(ctx context.Context, node *Node, encode func(initialised bool) ([]byte, error)) (uint64, error) {
	for range 3 {
		last, err := emptyCluster(ctx, node)
		if err != nil {
			return 0, err
		}
		data, err := encode(last == 1)
		if err != nil {
			return 0, err
		}
		seq, err := publishAfter(ctx, node, data, last)
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			continue
		}
		return seq, err
	}
	return 0, fmt.Errorf("%w: it changed while the import began", ErrNotEmpty)
}

// emptyCluster returns the stream's last seq when it holds nothing or only the init
// operation, else ErrNotEmpty.
func emptyCluster(ctx context.Context, node *Node) (uint64, error) {
	last, err := node.LastSeq(ctx)
	if err != nil {
		return 0, fmt.Errorf("cluster: import: %w", err)
	}
	if last == 0 {
		return 0, nil
	}
	if last == 1 {
		msg, err := node.stream.GetMsg(ctx, 1)
		if err != nil {
			return 0, fmt.Errorf("cluster: import: read the first operation: %w", err)
		}
		var o op
		if json.Unmarshal(msg.Data, &o) == nil && o.Kind == kindInit {
			return 1, nil
		}
	}
	return 0, fmt.Errorf("%w: its stream %s holds %d operations; import only into a cluster that has served nothing", ErrNotEmpty, node.streamName(), last)
}

// publishAfter stores data in the stream if its last seq is still last, and returns data's seq.
func publishAfter(ctx context.Context, node *Node, data []byte, last uint64) (uint64, error) {
	actx, cancel := context.WithTimeout(ctx, proposeTimeout)
	defer cancel()
	ack, err := node.js.Publish(actx, node.subject("ops"), data, jetstream.WithExpectLastSequence(last))
	if err != nil {
		return 0, fmt.Errorf("cluster: import: store a restore operation after seq %d: %w", last, err)
	}
	return ack.Sequence, nil
}

// restoreOp encodes a restore operation of entries, without the signing key when keepKey.
func restoreOp(reset bool, entries []store.Raw, keepKey bool) ([]byte, error) {
	if keepKey {
		entries = slices.DeleteFunc(slices.Clone(entries), func(r store.Raw) bool {
			return !r.Bucket && len(r.Path) == 1 && string(r.Path[0]) == "meta" && string(r.Key) == "signing_key"
		})
	}
	raw, err := json.Marshal(restoreArgs{Reset: reset, Entries: entries})
	if err != nil {
		return nil, fmt.Errorf("cluster: import: encode: %w", err)
	}
	data, err := json.Marshal(op{ID: randomID(), Node: "import", Now: time.Now().UnixMilli(), Kind: kindRestore, Args: raw})
	if err != nil {
		return nil, fmt.Errorf("cluster: import: encode: %w", err)
	}
	if len(data) > MaxOpBytes-1<<10 {
		return nil, fmt.Errorf("cluster: import: restore operation of %d bytes: too large", len(data))
	}
	return data, nil
}
