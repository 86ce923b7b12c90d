// Package boltstore keeps the broker's leases in a bbolt file so that they
// survive a restart of the daemon. Every change is written to the file
// before it returns, and changes that arrive while a commit is under way
// share the next, which the first of their callers makes. Changes are not fsynced on the way: a lease is worth no
// more than its owner process, and the only events that lose written but
// unsynced data (an OS crash, a power loss) also end every owner. The
// file is synced in the background, soon after a change, and on Close, so
// that the sticky memory of each name's last port outlives a reboot; the
// boot file (see boot.go) voids the leases of an earlier boot.
package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
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
// Version 1 kept a bare port per name; version 2 adds the sequence of its
// last use, so that the oldest names can be forgotten. Open upgrades 1.
const (
	schemaVersion = 2
	schemaV1      = 1
)

// syncDelay is how long a change may stay unsynced: what a power loss
// within it costs is the sticky memory of the names used meanwhile.
const syncDelay = 2 * time.Second

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
	bootID      string
	// batchHook, for tests, runs in the committing caller once it has its
	// first op of a batch and before it gathers the rest.
	batchHook func()
	onSync    func(txid uint64)
}

// WithLockTimeout sets how long Open waits for the file lock; zero or less
// means not at all.
func WithLockTimeout(d time.Duration) Option {
	return func(o *options) { o.lockTimeout = d }
}

// WithBootID names the boot the store is opened in (see boot.go). When
// the store was last opened in another boot, Open voids every lease, and
// rebuilds a torn file from the last ports it can still read instead of
// refusing it. Without it, Open forgets any boot on record.
func WithBootID(id string) Option {
	return func(o *options) { o.bootID = id }
}

// WithSyncHook has every sync of the file report the transaction it made
// durable, so that the caller can record how far the file on disk got.
// f runs after the sync, never on a change's path, and never twice at once.
func WithSyncHook(f func(txid uint64)) Option {
	return func(o *options) { o.onSync = f }
}

func withBatchHook(f func()) Option {
	return func(o *options) { o.batchHook = f }
}

// Store is a broker.Store on a bbolt file. It is safe for concurrent use.
type Store struct {
	path      string
	db        *bolt.DB
	batchHook func()
	onSync    func(txid uint64)
	syncMu    sync.Mutex // one sync at a time, so that onSync sees txids in order
	boot      BootReport
	recent    *recency // only the caller making a commit uses it

	firstMu   sync.Mutex
	first     *broker.State // what Open read, for the first Load
	firstTxID int           // the transaction it was read in

	// mu guards the commit queue: leading is true while a caller commits,
	// pending holds the ops that wait for the next commit, and idle is
	// signalled when leading turns false after Close.
	mu      sync.Mutex
	leading bool
	closing bool
	pending []*op
	idle    *sync.Cond
	batch   []*op // the leader's, reused

	quit chan struct{} // closed by Close
	// dirty tells the syncer that a commit wrote since its last sync;
	// synced is closed when the syncer has returned.
	dirty  chan struct{}
	synced chan struct{}

	closeOnce sync.Once
	closeErr  error

	commits   atomic.Uint64 // successful commits
	committed atomic.Uint64 // ops in them
	syncs     atomic.Uint64 // background and closing syncs
}

// BootReport says what Open found of the boot that last opened the store.
type BootReport struct {
	// Rebooted is true when the store was last opened in another boot.
	Rebooted bool
	// Voided counts the leases dropped for it.
	Voided int
	// TornAside, when the file was torn, names where it was moved; Torn
	// is why it could not be read. The new file holds the LastPorts that
	// could still be read.
	TornAside string
	Torn      error
	LastPorts int
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
	bootPath := path + bootSuffix
	var prevBoot string
	var rep BootReport
	if o.bootID != "" {
		if err := checkBootID(o.bootID); err != nil {
			return nil, fmt.Errorf("open state file %s: %w", path, err)
		}
		var err error
		if prevBoot, err = readBootFile(bootPath); err != nil {
			return nil, err
		}
		rep.Rebooted = prevBoot != "" && !sameBoot(prevBoot, o.bootID)
	}
	v, err := verify(path, timeout)
	var salvaged map[broker.NameKey]lastPort
	switch {
	case err == nil:
	case rep.Rebooted && torn(err):
		// Torn by the power loss or crash that ended the last boot: its
		// leases are void anyway; keep the names' last ports it still has.
		salvaged = salvageLastPorts(path)
		aside, merr := MoveAside(path)
		if merr != nil {
			return nil, fmt.Errorf("%v; and moving it aside failed: %w", err, merr)
		}
		rep.TornAside, rep.Torn, v = aside, err, nil
	default:
		return nil, err
	}
	// The freelist is rebuilt at open (a scan of a few MB) instead of
	// written at every commit: one page write less per change.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, classify(path, err)
	}
	s, err := newStore(db, path, o, v, rep, salvaged)
	if err != nil {
		db.Close()
		return nil, err
	}
	// The boot file vouches for the file as of this boot: sync what an
	// earlier daemon may have left unsynced before writing it.
	if o.bootID == "" {
		err = removeBootFile(bootPath)
	} else if prevBoot != o.bootID {
		if err = db.Sync(); err != nil {
			err = fmt.Errorf("sync state file %s: %w", path, err)
		} else {
			err = writeBootFile(bootPath, o.bootID)
		}
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	db.NoSync = true
	go s.syncer()
	return s, nil
}

// newStore readies the schema, voids the leases of another boot, and
// loads the names' recency.
func newStore(db *bolt.DB, path string, o options, v *verified, rep BootReport, salvaged map[broker.NameKey]lastPort) (*Store, error) {
	upgraded, err := initSchema(db, path)
	if err != nil {
		return nil, err
	}
	s := &Store{
		path:      path,
		db:        db,
		batchHook: o.batchHook,
		onSync:    o.onSync,
		recent:    newRecency(MaxLastPorts),
		quit:      make(chan struct{}),
		dirty:     make(chan struct{}, 1),
		synced:    make(chan struct{}),
	}
	s.idle = sync.NewCond(&s.mu)
	if rep.Rebooted {
		if rep.Voided, err = s.voidLeases(salvaged); err != nil {
			return nil, err
		}
	}
	err = guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			if err := s.recent.load(tx.Bucket(bucketLastPorts)); err != nil {
				return corrupt(path, "%v", err)
			}
			rep.LastPorts = s.recent.n
			// Nothing wrote the file since verify read it: the first
			// Load need not decode it again.
			if v != nil && !upgraded && !rep.Rebooted && v.txid == tx.ID() {
				s.first, s.firstTxID = &v.state, v.txid
			}
			return nil
		})
	})
	if err != nil {
		return nil, classify(path, err)
	}
	s.boot = rep
	return s, nil
}

// voidLeases drops every lease and, after a torn file, restores the last
// ports read from it. It returns how many leases it dropped.
func (s *Store) voidLeases(salvaged map[broker.NameKey]lastPort) (int, error) {
	var n int
	err := s.db.Update(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketLeases).Stats().KeyN
		if err := tx.DeleteBucket(bucketLeases); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketLeases); err != nil {
			return err
		}
		lp := tx.Bucket(bucketLastPorts)
		for k, v := range salvaged {
			if err := lp.Put(encodeNameKey(k), encodeLastPort(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("void the leases of an earlier boot in %s: %w", s.path, err)
	}
	return n, nil
}

// Boot reports what Open found of the boot that last opened the store.
func (s *Store) Boot() BootReport { return s.boot }

// initSchema creates the buckets in a new file, checks them again in an
// old one in case it changed between verify and the write lock, and
// upgrades a version 1 file. It reports whether it upgraded.
func initSchema(db *bolt.DB, path string) (upgraded bool, err error) {
	var version uint64
	err = guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			var err error
			version, err = checkSchema(tx, path)
			return err
		})
	})
	switch {
	case err != nil:
		return false, classify(path, err)
	case version == schemaVersion:
		return false, nil
	case version == schemaV1:
		return true, upgradeV1(db, path)
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
		return false, fmt.Errorf("initialise state file %s: %w", path, err)
	}
	return false, nil
}

// upgradeV1 gives every last port of a version 1 file a sequence, in key
// order since the file kept no recency.
func upgradeV1(db *bolt.DB, path string) error {
	err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLastPorts)
		type rec struct {
			k    []byte
			port uint16
		}
		var recs []rec
		err := b.ForEach(func(k, v []byte) error {
			port, err := decodePort(v)
			if err != nil {
				return corrupt(path, "last port record %q: %v", k, err)
			}
			recs = append(recs, rec{bytes.Clone(k), port})
			return nil
		})
		if err != nil {
			return err
		}
		for i, r := range recs {
			if err := b.Put(r.k, encodeLastPort(lastPort{port: r.port, seq: uint64(i + 1)})); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, []byte(strconv.Itoa(schemaVersion)))
	})
	if err != nil {
		return fmt.Errorf("upgrade state file %s to schema %d: %w", path, schemaVersion, err)
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
		s.mu.Lock()
		s.closing = true
		for i, o := range s.pending {
			o.done <- s.errClosed()
			s.pending[i] = nil
		}
		s.pending = s.pending[:0]
		for s.leading {
			s.idle.Wait()
		}
		s.mu.Unlock()
		<-s.synced
		serr := s.sync()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close state file %s: %w", s.path, err)
		} else {
			s.closeErr = serr
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
	s.firstMu.Lock()
	first, firstTxID := s.first, s.firstTxID
	s.first = nil
	s.firstMu.Unlock()
	var st broker.State
	err := guard(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			if first != nil && tx.ID() == firstTxID {
				st = *first // unchanged since Open read it
				return nil
			}
			var err error
			st, err = readState(tx, s.path, schemaVersion)
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
		port:    l.Port,
	})
}

// Delete removes the leases with these IDs, ignoring unknown ones, and
// keeps their names' last ports. It returns once the change is written.
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
	nameKey       []byte
	port          uint16
	del           [][]byte
	// done, for an op that waits for another caller's commit, receives
	// its outcome, or errLead when its caller is to make the next commit.
	done chan error
}

// errLead tells a waiting caller that the next commit is its to make.
var errLead = errors.New("lead the next commit")

func (o *op) apply(leases, lastPorts *bolt.Bucket, recent *recency) error {
	if o.putID != nil {
		if err := leases.Put(o.putID, o.putRec); err != nil {
			return fmt.Errorf("put lease %q: %w", o.putID, err)
		}
		if err := recent.touch(lastPorts, o.nameKey, o.port); err != nil {
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

// do commits o, together with whatever other changes wait meanwhile. The
// caller who finds no commit under way makes one in its own goroutine,
// with every op waiting when it starts: one write of the file for the
// lot. Callers who arrive during a commit queue up; when it ends, the
// first of them makes the next one for the whole queue. A lone caller
// thus commits at once, with no hand-over to another goroutine and back,
// and concurrent callers share commits.
//
// bbolt's own Batch would serve here too, but it holds every batch open for
// MaxBatchDelay (10ms by default) to wait for company, and a lone caller,
// the common case on a developer's machine, would pay that on every change.
//
// ctx is checked only on the way in: once queued, o is committed or failed
// with its batch, and the caller learns which.
func (s *Store) do(ctx context.Context, o *op) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("state file %s: %w", s.path, err)
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return s.errClosed()
	}
	if !s.leading {
		s.leading = true
		s.mu.Unlock()
		return s.lead(o)
	}
	o.done = make(chan error, 1)
	s.pending = append(s.pending, o)
	s.mu.Unlock()
	if err := <-o.done; err != errLead {
		return err
	}
	return s.lead(o)
}

// lead commits o and every op waiting, tells each waiter the outcome, and
// hands the lead to the first op queued meanwhile, if any.
func (s *Store) lead(o *op) error {
	if s.batchHook != nil {
		s.batchHook()
	}
	// Let every caller already runnable queue its op first: on the
	// daemon's one P they could not run while this one did, and a batch
	// of them costs about what one op does (BENCHMARKS.md: 8 clients
	// acquire a third faster).
	runtime.Gosched()
	s.mu.Lock()
	batch := append(append(s.batch[:0], o), s.pending...)
	clear(s.pending)
	s.pending = s.pending[:0]
	s.mu.Unlock()

	err := s.commit(batch)
	for _, w := range batch[1:] {
		w.done <- err
	}
	clear(batch)
	s.batch = batch[:0]
	if err == nil {
		select {
		case s.dirty <- struct{}{}:
		default: // the syncer already knows
		}
	}

	s.mu.Lock()
	if len(s.pending) > 0 {
		next := s.pending[0]
		n := copy(s.pending, s.pending[1:])
		s.pending[n] = nil
		s.pending = s.pending[:n]
		next.done <- errLead
	} else {
		s.leading = false
		s.idle.Broadcast()
	}
	s.mu.Unlock()
	return err
}

// syncer syncs the file syncDelay after the first change since its last
// sync, on a goroutine of its own so that commits never wait for a flush
// (an fdatasync can take a long time on a busy disk). An idle store does
// no work.
func (s *Store) syncer() {
	defer close(s.synced)
	timer := time.NewTimer(syncDelay)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-s.dirty:
		}
		timer.Reset(syncDelay)
		select {
		case <-s.quit:
			return // Close syncs
		case <-timer.C:
		}
		// This sync covers every change written before it starts.
		select {
		case <-s.dirty:
		default:
		}
		// A failed sync leaves the changes written; Close tries again.
		_ = s.sync()
	}
}

// Sync makes every change written so far durable, as the background sync
// does, and reports it to the sync hook.
func (s *Store) Sync() error {
	if s.isClosed() {
		return s.errClosed()
	}
	return s.sync()
}

// sync makes every written change durable and reports the transaction it
// covers to the sync hook.
func (s *Store) sync() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	// The newest commit when the sync starts is what it covers at least.
	var txid uint64
	if err := s.db.View(func(tx *bolt.Tx) error { txid = uint64(tx.ID()); return nil }); err != nil {
		return fmt.Errorf("sync state file %s: %w", s.path, err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("sync state file %s: %w", s.path, err)
	}
	s.syncs.Add(1)
	if s.onSync != nil {
		s.onSync(txid)
	}
	return nil
}

func (s *Store) commit(batch []*op) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		leases, lastPorts := tx.Bucket(bucketLeases), tx.Bucket(bucketLastPorts)
		if leases == nil || lastPorts == nil {
			return fmt.Errorf("bucket %q or %q missing", bucketLeases, bucketLastPorts)
		}
		for _, o := range batch {
			if err := o.apply(leases, lastPorts, s.recent); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// The transaction rolled back; so must the recency it moved.
		_ = s.db.View(func(tx *bolt.Tx) error {
			if b := tx.Bucket(bucketLastPorts); b != nil {
				return s.recent.load(b)
			}
			return nil
		})
		return fmt.Errorf("commit %d changes to %s: %w", len(batch), s.path, err)
	}
	s.commits.Add(1)
	s.committed.Add(uint64(len(batch)))
	return nil
}
