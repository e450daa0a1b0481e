// Package cluster runs Kaiwa on NATS JetStream, so that several nodes serve one set of users,
// rooms and messages (cluster mode, SPEC §8).
//
// The design is state machine replication. JetStream holds one stream, KAIWA, on the subject
// kaiwa.ops: file storage, replicated (-replicas), deletes and purges denied. Every mutation of
// the store is an operation appended to it; every node applies every operation, in stream
// order, to its own local bbolt file by calling the *store.Store method the operation names,
// with the proposer's time, and records the stream seq in the same transaction. The file is a
// cache, never the only copy: a node that loses it rebuilds it from the stream. Since every node
// applies the same operations in the same order to the same deterministic store, per-room seqs
// come out gapless and identical everywhere, and a compare-and-swap (a refresh rotation) has the
// same outcome on every node.
//
// A Node is the process's JetStream: an embedded NATS server (-nats-embed, -nats-cluster,
// -nats-routes) or a connection to an existing system (-nats). An Engine embeds the local cache
// for reads and overrides every mutating method; reads that find nothing first wait for the
// cache to apply what the stream holds, since the thing may have been created on another node a
// moment ago.
//
// "Acknowledged" means stored by a majority of the stream's replicas: embedded nodes fsync
// every write (sync_interval always); an external system must be configured so.
package cluster
