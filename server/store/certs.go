package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The certs bucket holds TLS material: Kaiwa's own certificate authority and the server
// certificate it issued (-tls-self), and the ACME client's cache (-acme). Values are opaque to
// the store. The bucket is created by the first write, so a database that never served TLS
// has none and needs no migration.

// Cert returns the value stored under key in the certs bucket, or ErrNotFound.
func (s *Store) Cert(key string) ([]byte, error) {
	var v []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCerts)
		if b == nil {
			return ErrNotFound
		}
		if v = clone(b.Get([]byte(key))); v == nil {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: cert %q: %w", key, err)
	}
	return v, nil
}

// PutCert stores value under key in the certs bucket, replacing what was there.
func (s *Store) PutCert(key string, value []byte) error {
	err := s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCerts)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), value)
	})
	if err != nil {
		return fmt.Errorf("store: put cert %q: %w", key, err)
	}
	return nil
}

// DeleteCert removes key from the certs bucket; a missing key is not an error.
func (s *Store) DeleteCert(key string) error {
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCerts)
		if b == nil {
			return nil
		}
		return b.Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("store: delete cert %q: %w", key, err)
	}
	return nil
}
