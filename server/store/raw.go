package store

import (
	"bytes"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Raw is one entry of a database's raw content, as Dump gives it and Restore writes it: when
// Bucket, the bucket Key, with its sequence Seq, inside the bucket at Path (none: a top-level
// bucket); else the pair Key, Value in the bucket at Path.
type Raw struct {
	Path   [][]byte `json:"p,omitempty"`
	Key    []byte   `json:"k"`
	Value  []byte   `json:"v,omitempty"`
	Bucket bool     `json:"b,omitempty"`
	Seq    uint64   `json:"s,omitempty"`
}

// Dump calls fn with every bucket and pair of the database, in one read transaction, each
// bucket before its content, the meta bucket (the signing key) last, and without the applied
// log position (AppliedSeq), which belongs to the copy. The slices are fn's to keep.
func (s *Store) Dump(fn func(Raw) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		var names [][]byte
		if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if !bytes.Equal(name, bucketMeta) {
				names = append(names, clone(name))
			}
			return nil
		}); err != nil {
			return err
		}
		if tx.Bucket(bucketMeta) != nil {
			names = append(names, clone(bucketMeta))
		}
		for _, name := range names {
			if err := dumpBucket(tx.Bucket(name), nil, name, fn); err != nil {
				return err
			}
		}
		return nil
	})
}

func dumpBucket(b *bolt.Bucket, path [][]byte, name []byte, fn func(Raw) error) error {
	if err := fn(Raw{Path: path, Key: clone(name), Bucket: true, Seq: b.Sequence()}); err != nil {
		return err
	}
	inner := append(append([][]byte(nil), path...), clone(name))
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			return dumpBucket(b.Bucket(k), inner, k, fn)
		}
		if isAppliedSeq(inner, k) {
			return nil
		}
		return fn(Raw{Path: inner, Key: clone(k), Value: clone(v)})
	})
}

func isAppliedSeq(path [][]byte, key []byte) bool {
	return len(path) == 1 && bytes.Equal(path[0], bucketMeta) && bytes.Equal(key, keyAppliedSeq)
}

// Restore writes entries as they are, in one transaction, creating the buckets on their paths
// when missing; with reset it first empties the database down to the schema's empty buckets
// and the signing key: rooms, users, the key that names dm rooms, all go. An entry for the applied log position is skipped: a view
// from At records its own. The signing key in use becomes the one stored, if any. Restore
// tells the Observer nothing: it is for a database nobody is connected to yet (a cluster that
// imports a single-process database).
func (s *Store) Restore(reset bool, entries []Raw) error {
	err := s.update(func(tx *bolt.Tx) error {
		if reset {
			key := clone(tx.Bucket(bucketMeta).Get(keySigningKey))
			var names [][]byte
			if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				names = append(names, clone(name))
				return nil
			}); err != nil {
				return err
			}
			for _, name := range names {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
			}
			if err := createSchema(tx); err != nil {
				return err
			}
			if key != nil {
				if err := tx.Bucket(bucketMeta).Put(keySigningKey, key); err != nil {
					return err
				}
			}
		}
		for _, e := range entries {
			if err := restore(tx, e); err != nil {
				return fmt.Errorf("%q/%q: %w", e.Path, e.Key, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	var key []byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		key = clone(tx.Bucket(bucketMeta).Get(keySigningKey))
		return nil
	}); err != nil {
		return fmt.Errorf("store: restore: read signing key: %w", err)
	}
	if key != nil {
		s.setKey(key)
	}
	return nil
}

func restore(tx *bolt.Tx, e Raw) error {
	if isAppliedSeq(e.Path, e.Key) {
		return nil
	}
	if len(e.Path) == 0 {
		if !e.Bucket {
			return errors.New("a pair outside any bucket")
		}
		b, err := tx.CreateBucketIfNotExists(e.Key)
		if err != nil {
			return err
		}
		return b.SetSequence(e.Seq)
	}
	b, err := tx.CreateBucketIfNotExists(e.Path[0])
	for _, name := range e.Path[1:] {
		if err != nil {
			return err
		}
		b, err = b.CreateBucketIfNotExists(name)
	}
	if err != nil {
		return err
	}
	if !e.Bucket {
		return b.Put(e.Key, e.Value)
	}
	nb, err := b.CreateBucketIfNotExists(e.Key)
	if err != nil {
		return err
	}
	return nb.SetSequence(e.Seq)
}
