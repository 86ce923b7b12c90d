// Package boltstore keeps the broker's leases in a bbolt file so that they
// survive a restart. Every change is committed and fsynced before it
// returns; changes that arrive while a commit is under way share the next.
package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/portbroker/portbroker/broker"
)

// DefaultLockTimeout is how long Open waits for another holder of the file
// to let go before it returns ErrLocked.
const DefaultLockTimeout = 100 * time.Millisecond

// schemaVersion is the layout of the buckets, stored in the meta bucket.
const schemaVersion = 1

var (
	bucketMeta      = []byte("meta")
	bucketLeases    = []byte("leases")
	bucketLastPorts = []byte("last_ports")
	keySchema       = []byte("schema_version")
)

// Option configures Open.
type Option func(*options)

type options struct {
	lockTimeout time.Duration
	// batchHook, for tests, runs in the committer once it has taken the
	// first op of a batch and before it gathers the rest.
	batchHook func()
}

// WithLockTimeout sets how long Open waits for the file lock; zero or less
// means not at all.
func WithLockTimeout(d time.Duration) Option {
	return func(o *options) { o.lockTimeout = d }
}

func withBatchHook(f func()) Option {
	return func(o *options) { o.batchHook = f }
}

// Store is a broker.Store on a bbolt file. It is safe for concurrent use.
type Store struct {
	path      string
	db        *bolt.DB
	batchHook func()

	ops     chan *op
	quit    chan struct{} // closed by Close
	stopped chan struct{} // closed when the committer has returned

	closeOnce sync.Once
	closeErr  error

	commits   atomic.Uint64 // successful commits
	committed atomic.Uint64 // ops in them
}

var _ broker.Store = (*Store)(nil)

// Open opens the state file at path, creating it (mode 0600) and its
// directory (0700) if missing. It returns an error matching ErrLocked
// while another Store has the file open, and one matching ErrCorrupt, with
// the file untouched, when the file cannot be read.
func Open(path string, opts ...Option) (*Store, error) {
	if path == "" {
		return nil, errors.New("open state file: path is empty")
	}
	o := options{lockTimeout: DefaultLockTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	timeout := o.lockTimeout
	if timeout <= 0 {
		timeout = time.Nanosecond // bbolt waits forever on zero
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	if err := verify(path, timeout); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return nil, classify(path, err)
	}
	if err := initSchema(db, path); err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{
		path:      path,
		db:        db,
		batchHook: o.batchHook,
		ops:       make(chan *op),
		quit:      make(chan struct{}),
		stopped:   make(chan struct{}),
	}
	go s.run()
	return s, nil
}

// initSchema creates the buckets in a new file, and checks them again in
// an old one in case it changed between verify and the write lock.
func initSchema(db *bolt.DB, path string) error {
	var fresh bool
	err := guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			var err error
			fresh, err = checkSchema(tx, path)
			return err
		})
	})
	if err != nil || !fresh {
		return classify(path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keySchema, []byte(strconv.Itoa(schemaVersion))); err != nil {
			return err
		}
		for _, name := range [][]byte{bucketLeases, bucketLastPorts} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("initialise state file %s: %w", path, err)
	}
	return nil
}

// Path returns the file's path as given to Open.
func (s *Store) Path() string { return s.path }

// Close waits for the commit under way, if any, and closes the file.
// Changes not yet taken into a commit fail with broker.ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.quit)
		<-s.stopped
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close state file %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

func (s *Store) errClosed() error {
	return fmt.Errorf("state file %s: %w", s.path, broker.ErrClosed)
}

func (s *Store) isClosed() bool {
	select {
	case <-s.quit:
		return true
	default:
		return false
	}
}

// Load returns every lease and every remembered last port. A record it
// cannot decode is an error matching ErrCorrupt that names its key.
func (s *Store) Load(ctx context.Context) (broker.State, error) {
	if s.isClosed() {
		return broker.State{}, s.errClosed()
	}
	if err := ctx.Err(); err != nil {
		return broker.State{}, fmt.Errorf("load %s: %w", s.path, err)
	}
	var st broker.State
	err := guard(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			var err error
			st, err = readState(tx, s.path)
			return err
		})
	})
	switch {
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return broker.State{}, s.errClosed()
	case err != nil:
		return broker.State{}, classify(s.path, err)
	}
	return st, nil
}

// Put stores l, replacing any lease with its ID, and remembers its port as
// the last port of its name. It returns once the change is durable.
func (s *Store) Put(ctx context.Context, l broker.Lease) error {
	rec, err := encodeLease(l)
	if err != nil {
		return fmt.Errorf("store lease %q: %w", l.ID, err)
	}
	return s.do(ctx, &op{
		putID:   []byte(l.ID),
		putRec:  rec,
		nameKey: encodeNameKey(l.Key()),
		port:    encodePort(l.Port),
	})
}

// Delete removes the leases with these IDs, ignoring unknown ones, and
// keeps their names' last ports. It returns once the change is durable.
func (s *Store) Delete(ctx context.Context, ids ...string) error {
	o := &op{del: make([][]byte, len(ids))}
	for i, id := range ids {
		if id == "" {
			return fmt.Errorf("delete leases: %w", &broker.FieldError{Field: fmt.Sprintf("ids[%d]", i), Rule: "must not be empty"})
		}
		o.del[i] = []byte(id)
	}
	if len(ids) == 0 {
		if s.isClosed() {
			return s.errClosed()
		}
		return nil
	}
	return s.do(ctx, o)
}

// op is one Put or Delete, applied in a commit with whatever others are
// waiting at the time.
type op struct {
	putID, putRec []byte
	nameKey, port []byte
	del           [][]byte
	done          chan error
}

func (o *op) apply(leases, lastPorts *bolt.Bucket) error {
	if o.putID != nil {
		if err := leases.Put(o.putID, o.putRec); err != nil {
			return fmt.Errorf("put lease %q: %w", o.putID, err)
		}
		if err := lastPorts.Put(o.nameKey, o.port); err != nil {
			return fmt.Errorf("put last port of lease %q: %w", o.putID, err)
		}
	}
	for _, id := range o.del {
		if err := leases.Delete(id); err != nil {
			return fmt.Errorf("delete lease %q: %w", id, err)
		}
	}
	return nil
}

// do hands o to the committer and waits for its commit. ctx bounds only
// the wait to hand it over: once taken, o is committed or failed with its
// batch, and the caller learns which.
func (s *Store) do(ctx context.Context, o *op) error {
	if s.isClosed() {
		return s.errClosed()
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("state file %s: %w", s.path, err)
	}
	o.done = make(chan error, 1)
	select {
	case s.ops <- o:
	case <-s.quit:
		return s.errClosed()
	case <-ctx.Done():
		return fmt.Errorf("state file %s: %w", s.path, ctx.Err())
	}
	return <-o.done
}

// run is the committer. It takes one op, then every op already waiting,
// and commits them in one transaction: one fsync for the lot. A lone
// caller pays one fsync and waits for nothing else; callers that arrive
// during a commit are gathered into the next one.
//
// bbolt's own Batch would serve here too, but it holds every batch open for
// MaxBatchDelay (10ms by default) to wait for company, and a lone caller,
// the common case on a developer's machine, would pay that on every change.
func (s *Store) run() {
	defer close(s.stopped)
	var batch []*op
	for {
		select {
		case <-s.quit:
			return
		case o := <-s.ops:
			batch = append(batch, o)
		}
		if s.batchHook != nil {
			s.batchHook()
		}
	gather:
		for {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			default:
				break gather
			}
		}
		err := s.commit(batch)
		for i, o := range batch {
			o.done <- err
			batch[i] = nil
		}
		batch = batch[:0]
	}
}

func (s *Store) commit(batch []*op) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		leases, lastPorts := tx.Bucket(bucketLeases), tx.Bucket(bucketLastPorts)
		if leases == nil || lastPorts == nil {
			return fmt.Errorf("bucket %q or %q missing", bucketLeases, bucketLastPorts)
		}
		for _, o := range batch {
			if err := o.apply(leases, lastPorts); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("commit %d changes to %s: %w", len(batch), s.path, err)
	}
	s.commits.Add(1)
	s.committed.Add(uint64(len(batch)))
	return nil
}
