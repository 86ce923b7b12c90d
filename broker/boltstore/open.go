package boltstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/portbroker/portbroker/broker"
)

var (
	// ErrLocked matches the error Open returns when another Store, in this
	// process or another, has the file open.
	ErrLocked = errors.New("state file locked")
	// ErrCorrupt matches the error Open and Load return for a file they
	// cannot read. The file is left as it was; see MoveAside.
	ErrCorrupt = errors.New("state file unreadable")
)

type lockedError struct{ path string }

func (e *lockedError) Error() string {
	return "state file " + e.path + " is locked: another portbrokerd is using this state dir"
}

func (e *lockedError) Is(target error) bool { return target == ErrLocked }

type corruptError struct {
	path string
	why  string
	err  error // the underlying cause, if any
	// newer is set for a file a newer portbrokerd wrote: not damage, so
	// never rebuilt after a reboot.
	newer bool
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("state file %s cannot be read: %s; move it aside, or start portbrokerd with --recover to move it aside and start empty", e.path, e.why)
}

func (e *corruptError) Is(target error) bool { return target == ErrCorrupt }

func (e *corruptError) Unwrap() error { return e.err }

// torn reports whether err is damage a power loss may have left: any
// unreadable file but one a newer portbrokerd wrote.
func torn(err error) bool {
	var ce *corruptError
	return errors.As(err, &ce) && !ce.newer
}

func corrupt(path, format string, args ...any) error {
	return &corruptError{path: path, why: fmt.Sprintf(format, args...)}
}

// panicError is a panic or memory fault that bbolt raised while reading a
// damaged file.
type panicError struct{ v any }

func (e *panicError) Error() string { return fmt.Sprint(e.v) }

// guard runs fn, turning a panic or a fault on a mapped page past the end
// of the file into an error: that is how bbolt meets some damage.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{v: v}
		}
	}()
	return fn()
}

// classify turns an error from opening or reading path into one that
// matches ErrLocked or ErrCorrupt when it means that, else wraps it.
func classify(path string, err error) error {
	var (
		pe      *panicError
		pathErr *fs.PathError
		errno   syscall.Errno
	)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrCorrupt), errors.Is(err, ErrLocked):
		return err
	case errors.Is(err, berrors.ErrTimeout):
		return &lockedError{path: path}
	case errors.As(err, &pe):
		return &corruptError{path: path, why: "damaged page (" + pe.Error() + ")", err: err}
	case errors.Is(err, berrors.ErrInvalid):
		return &corruptError{path: path, why: "not a bbolt database", err: err}
	case errors.Is(err, berrors.ErrVersionMismatch):
		return &corruptError{path: path, why: "written by an unknown bbolt version", err: err}
	case errors.Is(err, berrors.ErrChecksum):
		return &corruptError{path: path, why: "bad checksum", err: err}
	case errors.As(err, &pathErr), errors.As(err, &errno):
		// The file could not be opened, locked or mapped: nothing is known
		// about its contents.
		return fmt.Errorf("open state file %s: %w", path, err)
	}
	// bbolt's other open errors (a file too short to hold its meta pages,
	// say) are about the contents.
	return &corruptError{path: path, why: err.Error(), err: err}
}

// verified is what verify read: the file's state and the transaction it
// read it in, so that Open can hand it to the first Load when nothing
// wrote the file in between.
type verified struct {
	state broker.State
	txid  int
}

// verify reads an existing file through a read-only handle, all of it,
// before Open lets bbolt write to it: on a damaged file bbolt would
// otherwise write its own pages, or on Windows grow the file to its map
// size, or fault on a page past the end. It returns nil for a file that
// does not exist or holds nothing yet.
func verify(path string, timeout time.Duration) (*verified, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("open state file: %w", err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("open state file %s: not a regular file", path)
	case fi.Size() == 0:
		// Holds nothing to lose; a crash between creating the file and
		// writing its first pages leaves one. bbolt initialises it.
		return nil, nil
	}

	db, f, err := openReadOnly(path, timeout)
	if err != nil {
		return nil, classify(path, err)
	}
	defer db.Close()
	fi, err = f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open state file: %w", err)
	}
	var v *verified
	err = guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			if need := tx.Size(); fi.Size() < need {
				return corrupt(path, "truncated: %d bytes, but its pages reach byte %d", fi.Size(), need)
			}
			version, err := checkSchema(tx, path)
			if err != nil || version == 0 {
				return err
			}
			st, err := readState(tx, path, version)
			if err != nil {
				return err
			}
			v = &verified{state: st, txid: tx.ID()}
			return nil
		})
	})
	if err != nil {
		return nil, classify(path, err)
	}
	return v, nil
}

// checkSchema returns the schema version of tx's file, 0 for a new bbolt
// file with no buckets yet, or an error if this code cannot read it.
func checkSchema(tx *bolt.Tx, path string) (version uint64, err error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if k, _ := tx.Cursor().First(); k != nil {
			return 0, corrupt(path, "not a portbroker state file (no %q bucket, but a %q one)", bucketMeta, k)
		}
		return 0, nil
	}
	raw := meta.Get(keySchema)
	v, err := strconv.ParseUint(string(raw), 10, 32)
	switch {
	case err != nil:
		return 0, corrupt(path, "schema version %q is not a number", raw)
	case v > schemaVersion:
		return 0, &corruptError{path: path, newer: true,
			why: fmt.Sprintf("schema version %d is newer than this portbrokerd reads (%d), so run a newer portbrokerd", v, schemaVersion)}
	case v < schemaV1:
		return 0, corrupt(path, "unknown schema version %d", v)
	}
	for _, name := range [][]byte{bucketLeases, bucketLastPorts} {
		if tx.Bucket(name) == nil {
			return 0, corrupt(path, "bucket %q missing", name)
		}
	}
	return v, nil
}

// readState decodes every record, so that a damaged one is reported
// rather than dropped.
func readState(tx *bolt.Tx, path string, version uint64) (broker.State, error) {
	leases := tx.Bucket(bucketLeases)
	st := broker.State{LastPorts: make(map[broker.NameKey]uint16)}
	err := leases.ForEach(func(k, v []byte) error {
		if v == nil {
			return corrupt(path, "lease record %q is a bucket", k)
		}
		l, err := decodeLease(v)
		if err != nil {
			// Not wrapped: a FieldError here would match broker.ErrInvalid.
			return corrupt(path, "lease record %q: %v", k, err)
		}
		if l.ID != string(k) {
			return corrupt(path, "lease record %q holds lease %q", k, l.ID)
		}
		st.Leases = append(st.Leases, l)
		return nil
	})
	if err != nil {
		return broker.State{}, err
	}
	err = tx.Bucket(bucketLastPorts).ForEach(func(k, v []byte) error {
		key, err := decodeNameKey(k)
		if err != nil {
			return corrupt(path, "last port record %q: %v", k, err)
		}
		var port uint16
		if version == schemaV1 {
			port, err = decodePort(v)
		} else {
			var lp lastPort
			lp, err = decodeLastPort(v)
			port = lp.port
		}
		if err != nil {
			return corrupt(path, "last port record %q: %v", k, err)
		}
		st.LastPorts[key] = port
		return nil
	})
	if err != nil {
		return broker.State{}, err
	}
	return st, nil
}

// MoveAside renames the file at path to path+".corrupt-<UTC time>",
// keeping its bytes for a later look, and returns the new name. Call it
// only once Open has returned an error matching ErrCorrupt: it does not
// check whether another portbrokerd has the file open.
func MoveAside(path string) (string, error) {
	aside := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405.000000000Z")
	if _, err := os.Lstat(aside); err == nil {
		return "", fmt.Errorf("move %s aside: %s already exists", path, aside)
	}
	if err := os.Rename(path, aside); err != nil {
		return "", fmt.Errorf("move state file aside: %w", err)
	}
	return aside, nil
}

// openReadOnly opens the file at path read-only, turning a panic of bbolt's
// on a damaged file into an error. f is the file bbolt opened, for a
// caller that must close it after a Close that panicked: bbolt leaves its
// file open when it panics.
func openReadOnly(path string, timeout time.Duration) (db *bolt.DB, f *os.File, err error) {
	openFile := func(name string, flag int, perm os.FileMode) (*os.File, error) {
		var err error
		f, err = os.OpenFile(name, flag, perm)
		return f, err
	}
	err = guard(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout, OpenFile: openFile})
		return err
	})
	if err != nil {
		if pe := (*panicError)(nil); errors.As(err, &pe) && f != nil {
			f.Close()
		}
		return nil, nil, err
	}
	return db, f, nil
}
