package store

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"kaiwa/shared/proto"
)

// Errors callers branch on.
var (
	ErrLocked        = errors.New("database file is locked by another kaiwa process")
	ErrCorrupt       = errors.New("database file is damaged")
	ErrNotFound      = errors.New("not found")
	ErrUsernameTaken = errors.New("username taken")
	ErrRoomExists    = errors.New("room exists")
	// ErrUnavailable: the change could not be stored for now (a cluster node that cannot reach
	// JetStream, or is waiting for its election); retrying later may succeed.
	ErrUnavailable = errors.New("storage unavailable")
)

// DefaultRoom is the room every new database starts with.
const DefaultRoom = "general"

// lockTimeout bounds how long Open waits for another process's lock on the file.
const lockTimeout = time.Second

var (
	bucketMeta      = []byte("meta")
	bucketUsers     = []byte("users")
	bucketUsernames = []byte("usernames")
	bucketSessions  = []byte("sessions")
	bucketRooms     = []byte("rooms")
	bucketMsgs      = []byte("msgs")
	bucketIDs       = []byte("ids")
	bucketCerts     = []byte("certs")
	keySchema       = []byte("schema")
	keySigningKey   = []byte("signing_key")
	keyRoomInfo     = []byte("info")

	// Schema 2 (§7, conversations).
	bucketMembers     = []byte("members")     // in a room: user id → read marker + name
	bucketEdits       = []byte("edits")       // in a room: seq of an edit or deletion → running count of them
	bucketApplied     = []byte("applied")     // in a room: seq of a message → JSON applied (its latest edit or deletion)
	bucketMemberships = []byte("memberships") // user id + 0 + room → nil
	bucketMentions    = []byte("mentions")    // user id + 0 + room + 0 + seq → nil
	bucketPublic      = []byte("public")      // name of a public room → nil
	keyLastTS         = []byte("last_ts")     // in a room: unix ms of the newest message, or of its creation
	keyRoomHead       = []byte("head")        // in a room: its info in binary (encodeHead)
	keyDMKey          = []byte("dm_key")      // in meta: HMAC key that names dm rooms
	keyAppliedSeq     = []byte("applied_seq") // in meta: the last log position applied (At)
)

// Store is an open Kaiwa database.
type Store struct {
	db *bolt.DB
	sh *shared
	// at, when not zero, is the time of every mutation, and seq, when not zero, the log
	// position every mutation records (At).
	at  time.Time
	seq uint64
}

// shared is what a Store and its views (At) hold in common.
type shared struct {
	key atomic.Pointer[[]byte] // access-token signing key; nil until the store is initialised
	obs atomic.Pointer[Observer]
}

// Open opens the database at path, creating its directory (0700) and the file (0600) when
// missing, and brings its schema up to date. A new database is initialised (Initialize) with a
// signing key from crypto/rand. If another process holds the file, Open fails within about a
// second with an error that wraps ErrLocked.
func Open(path string) (*Store, error) {
	s, err := OpenEmpty(path)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: new signing key: %w", err)
	}
	if err := guard(func() error { return s.Initialize(key) }); err != nil {
		s.Close()
		return nil, err
	}
	if len(s.SigningKey()) < 32 {
		s.Close()
		return nil, errors.New("store: signing key missing or short")
	}
	return s, nil
}

// OpenEmpty is Open without initialising a new database: it has the schema's buckets but no
// signing key and no room general until Initialize. A cluster node opens its copy so, and fills
// it from the cluster's log.
func OpenEmpty(path string) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: create directory: %w", err)
		}
	}
	var db *bolt.DB
	err := guard(func() (err error) {
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
		return err
	})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("store: %s: %w", path, ErrLocked)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrVersionMismatch):
		return nil, fmt.Errorf("store: open %s: %w: %v", path, ErrCorrupt, err)
	case err != nil:
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{db: db, sh: &shared{}}
	if err := guard(s.migrate); err != nil {
		db.Close()
		return nil, err
	}
	if err := guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			if key := tx.Bucket(bucketMeta).Get(keySigningKey); key != nil {
				s.setKey(key)
			}
			return nil
		})
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: read signing key: %w", err)
	}
	return s, nil
}

// Initialize does what the first Open of a database does: it stores key as the signing key,
// derives from it the key that names dm rooms (dmKeyOf), and creates the room general at
// s.now(). On a database already initialised (it has a signing key) it changes nothing and
// returns nil; a view from At records its log position either way.
func (s *Store) Initialize(key []byte) error {
	if len(key) < 32 {
		return errors.New("store: initialize: signing key shorter than 32 bytes")
	}
	var stored []byte
	err := s.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if stored = clone(meta.Get(keySigningKey)); stored != nil {
			return nil
		}
		stored = clone(key)
		if err := meta.Put(keySigningKey, stored); err != nil {
			return err
		}
		if err := meta.Put(keyDMKey, dmKeyOf(key)); err != nil {
			return err
		}
		if tx.Bucket(bucketRooms).Bucket([]byte(DefaultRoom)) != nil {
			return nil
		}
		_, err := createRoom(tx, roomInfo{Name: DefaultRoom, CreatedAt: s.now(), Kind: proto.RoomPublic})
		return err
	})
	if err != nil {
		return fmt.Errorf("store: initialize: %w", err)
	}
	s.setKey(stored)
	return nil
}

// dmKeyOf derives the key that names dm rooms from the first signing key, so that every copy
// of a database initialised with the same key names dm rooms alike, and the name key reveals
// nothing of the signing key.
func dmKeyOf(key []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("kaiwa dm room names"))
	return mac.Sum(nil)
}

// Close closes the file, waiting for transactions in progress.
func (s *Store) Close() error { return s.db.Close() }

// Path returns the database file's path.
func (s *Store) Path() string { return s.db.Path() }

// SigningKey returns the HMAC key for access tokens, nil before Initialize. The caller must not
// modify it.
func (s *Store) SigningKey() []byte {
	if k := s.sh.key.Load(); k != nil {
		return *k
	}
	return nil
}

func (s *Store) setKey(key []byte) {
	k := clone(key)
	s.sh.key.Store(&k)
}

// RotateSigningKey replaces the access-token signing key with a new one from crypto/rand and
// returns it. Every access token signed before stops verifying; refresh sessions are untouched,
// so clients sign in again silently by refreshing. A server holding this store keeps the old key
// until it is restarted: rotate with the server stopped (the file lock sees to that across
// processes).
func (s *Store) RotateSigningKey() ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("store: new signing key: %w", err)
	}
	if err := s.SetSigningKey(key); err != nil {
		return nil, err
	}
	return clone(key), nil
}

// SetSigningKey replaces the access-token signing key with key (at least 32 bytes). The key
// that names dm rooms stays.
func (s *Store) SetSigningKey(key []byte) error {
	if len(key) < 32 {
		return errors.New("store: set signing key: shorter than 32 bytes")
	}
	key = clone(key)
	if err := s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySigningKey, key)
	}); err != nil {
		return fmt.Errorf("store: set signing key: %w", err)
	}
	s.setKey(key)
	return nil
}

// At returns a view of the store, sharing its file, signing key and Observer, whose mutations
// take now as their time and, when seq is not 0, record seq as the last applied position of a
// log in the same transaction as their change (AppliedSeq). A mutation that fails records
// nothing. A cluster node applies each entry of its log through such a view, so that every
// copy stores the same times.
func (s *Store) At(now time.Time, seq uint64) *Store {
	return &Store{db: s.db, sh: s.sh, at: now, seq: seq}
}

// AppliedSeq returns the log position recorded by the last mutation of a view from At with a
// seq, or 0 if none ever was.
func (s *Store) AppliedSeq() (uint64, error) {
	var seq uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyAppliedSeq); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: applied seq: %w", err)
	}
	return seq, nil
}

// now is the time of a mutation: the view's (At), else the clock's.
func (s *Store) now() time.Time {
	if !s.at.IsZero() {
		return s.at
	}
	return time.Now()
}

// update runs fn in a write transaction: every write of the store goes through it or batch.
// A view from At records its log position in the same transaction.
func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	return s.db.Update(s.recorded(fn))
}

// batch is update for writes that may share a commit with concurrent ones (bbolt's Batch): fn
// may run more than once, and must start from what is stored each time. A view from At with a
// seq writes alone, as update.
func (s *Store) batch(fn func(tx *bolt.Tx) error) error {
	if s.seq != 0 {
		return s.update(fn)
	}
	return s.db.Batch(s.recorded(fn))
}

func (s *Store) recorded(fn func(tx *bolt.Tx) error) func(tx *bolt.Tx) error {
	if s.seq == 0 {
		return fn
	}
	return func(tx *bolt.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyAppliedSeq, u64(s.seq))
	}
}

// migrations bring a database from schema version i to i+1. Append only: never edit or reorder
// one that has shipped.
var migrations = []func(tx *bolt.Tx) error{
	initialize,
	conversations,
}

// migrate brings the schema up to date. A new file gets the current schema's buckets at once,
// and no signing key nor room (Initialize): the migrations are for files made by an older Kaiwa.
func (s *Store) migrate() error {
	return s.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			return createSchema(tx)
		}
		meta := tx.Bucket(bucketMeta)
		var version uint64
		if v := meta.Get(keySchema); len(v) == 8 {
			version = binary.BigEndian.Uint64(v)
		}
		if version > uint64(len(migrations)) {
			return fmt.Errorf("store: schema version %d is newer than this kaiwa (%d): upgrade kaiwa", version, len(migrations))
		}
		for i := version; i < uint64(len(migrations)); i++ {
			if err := migrations[i](tx); err != nil {
				return fmt.Errorf("store: migration %d: %w", i+1, err)
			}
		}
		return meta.Put(keySchema, u64(uint64(len(migrations))))
	})
}

// createSchema creates the top-level buckets of the current schema in a new file.
func createSchema(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketMeta, bucketUsers, bucketUsernames, bucketSessions, bucketRooms,
		bucketMemberships, bucketMentions, bucketPublic} {
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("store: create bucket %s: %w", name, err)
		}
	}
	return tx.Bucket(bucketMeta).Put(keySchema, u64(uint64(len(migrations))))
}

// initialize creates the buckets, the signing key and the default room, as schema 1 had them.
// Only a file whose meta bucket was committed without a schema version would run it: new files
// get createSchema.
func initialize(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketUsers, bucketUsernames, bucketSessions, bucketRooms} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if err := tx.Bucket(bucketMeta).Put(keySigningKey, key); err != nil {
		return err
	}
	rb, err := tx.Bucket(bucketRooms).CreateBucket([]byte(DefaultRoom))
	if err != nil {
		return err
	}
	for _, name := range [][]byte{bucketMsgs, bucketIDs} {
		if _, err := rb.CreateBucket(name); err != nil {
			return err
		}
	}
	return putJSON(rb, keyRoomInfo, roomInfo{Name: DefaultRoom, CreatedAt: time.Now().UTC().Truncate(time.Millisecond)})
}

// Check verifies the consistency of the whole file and returns the first problem found, wrapping
// ErrCorrupt. It first reads every key and value of every bucket, where a damaged page is caught
// as an error, then runs bbolt's Tx.Check for the page accounting (bbolt panics in a goroutine
// of its own on a damaged page, which nobody could recover). It reads the whole file: about two
// seconds per million messages once the file is in the page cache, bound by the disk otherwise.
func (s *Store) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		if err := guard(func() error { return walk(tx.Cursor()) }); err != nil {
			return err
		}
		for err := range tx.Check() {
			return fmt.Errorf("store: %w: %v", ErrCorrupt, err)
		}
		return nil
	})
}

// walk reads every key and value reachable from c, descending into nested buckets.
func walk(c *bolt.Cursor) error {
	var sink byte
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			child := c.Bucket().Bucket(k)
			if child == nil {
				return fmt.Errorf("store: %w: bucket %q cannot be read", ErrCorrupt, k)
			}
			if err := walk(child.Cursor()); err != nil {
				return err
			}
			continue
		}
		// Touch the value's ends: a value running past the end of the file faults here.
		if len(v) > 0 {
			sink ^= v[0] ^ v[len(v)-1]
		}
	}
	_ = sink
	return nil
}

// QuickCheck verifies what can be checked without reading the whole file: both meta pages
// (checked by Open), every bucket but the message bodies and client ids, and that each room's
// first and last messages are where its sequence says. It takes milliseconds whatever the
// file's size, and misses damage inside older history that Check would find.
func (s *Store) QuickCheck() error {
	return guard(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			for _, name := range [][]byte{bucketMeta, bucketUsers, bucketUsernames, bucketSessions} {
				b := tx.Bucket(name)
				if b == nil {
					return fmt.Errorf("store: %w: bucket %s missing", ErrCorrupt, name)
				}
				if err := walk(b.Cursor()); err != nil {
					return err
				}
			}
			rooms := tx.Bucket(bucketRooms)
			if rooms == nil {
				return fmt.Errorf("store: %w: bucket %s missing", ErrCorrupt, bucketRooms)
			}
			return rooms.ForEachBucket(func(name []byte) error {
				rb := rooms.Bucket(name)
				msgs, ids := rb.Bucket(bucketMsgs), rb.Bucket(bucketIDs)
				if rb.Get(keyRoomInfo) == nil || msgs == nil || ids == nil {
					return fmt.Errorf("store: %w: room %q is incomplete", ErrCorrupt, name)
				}
				seq := msgs.Sequence()
				last, v := msgs.Cursor().Last()
				switch {
				case seq == 0 && last == nil:
					return nil
				case len(last) != 8 || binary.BigEndian.Uint64(last) != seq || len(v) == 0:
					return fmt.Errorf("store: %w: room %q: its last message is not seq %d", ErrCorrupt, name, seq)
				}
				if first, _ := msgs.Cursor().First(); len(first) != 8 || binary.BigEndian.Uint64(first) != 1 {
					return fmt.Errorf("store: %w: room %q: its first message is not seq 1", ErrCorrupt, name)
				}
				return nil
			})
		})
	})
}

// guard runs f and turns a panic or a memory fault inside it, which is how bbolt meets a damaged
// page, into an error wrapping ErrCorrupt.
func guard(f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store: %w: %v", ErrCorrupt, p)
		}
	}()
	return f()
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// Backup writes a consistent copy of the whole database to w, taken in one read transaction
// while writers go on, and returns the bytes written.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store: backup: %w", err)
	}
	return n, nil
}
