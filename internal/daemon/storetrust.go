package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
)

// CommitMarkFile, beside the store, holds the id of the last transaction
// the daemon saw committed. A store that opens older than that was rolled
// back (a meta page lost, a backup restored, a file swapped); one that
// opens empty although the mark says it held commits was emptied. Either
// way acknowledged leases are gone, and the daemon says so loudly instead
// of carrying on as if nothing happened.
const CommitMarkFile = StoreFile + ".committed"

// bbolt's file layout: each of the first two pages holds a meta record
// after a 16-byte page header. Fields (native byte order): magic,
// version, page size, flags (uint32 each), root bucket (16 bytes),
// freelist, pgid, txid, checksum (uint64 each); the checksum is FNV-64a of
// the bytes before it.
const (
	boltMagic       = 0xED0CDAED
	boltPageHeader  = 16
	boltMetaSize    = 64
	boltTxidOffset  = 48
	boltCheckOffset = 56
)

// storeTxid returns the id of the newest valid transaction in the bbolt
// file at path, as bbolt itself picks it on open: the higher txid of the
// two meta pages whose checksums hold. empty is true for a missing or
// zero-length file.
func storeTxid(path string) (txid uint64, empty bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, true, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, false, err
	}
	if fi.Size() == 0 {
		return 0, true, nil
	}
	first, ok := readMeta(f, 0)
	sizes := []int64{4096, 8192, 16384, 32768, 65536}
	if ok {
		txid = first.txid
		sizes = []int64{int64(first.pageSize)}
	}
	for _, ps := range sizes {
		if m, ok2 := readMeta(f, ps); ok2 && int64(m.pageSize) == ps {
			if !ok || m.txid > txid {
				txid = m.txid
			}
			ok = true
			break
		}
	}
	if !ok {
		return 0, false, fmt.Errorf("%s: no valid bbolt meta page", path)
	}
	return txid, false, nil
}

type boltMeta struct {
	pageSize uint32
	txid     uint64
}

func readMeta(r io.ReaderAt, pageOffset int64) (boltMeta, bool) {
	buf := make([]byte, boltMetaSize)
	if _, err := r.ReadAt(buf, pageOffset+boltPageHeader); err != nil {
		return boltMeta{}, false
	}
	e := binary.NativeEndian
	if e.Uint32(buf[0:]) != boltMagic {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	h.Write(buf[:boltCheckOffset])
	if h.Sum64() != e.Uint64(buf[boltCheckOffset:]) {
		return boltMeta{}, false
	}
	return boltMeta{pageSize: e.Uint32(buf[8:]), txid: e.Uint64(buf[boltTxidOffset:])}, true
}

// commitMark keeps CommitMarkFile up to date. The store reports each sync
// with the transaction it made durable, and the mark records it, without
// an fsync of its own: after a crash or a power loss the mark may lag the
// store on disk (no warning) but never lead it (no false alarm). Changes
// made since the last sync (at most a couple of seconds' worth) are not
// covered; a store swapped for one older than that is.
type commitMark struct {
	log    *slog.Logger
	mu     sync.Mutex
	mark   *os.File
	last   uint64
	failed bool
}

// openCommitMark opens (creating) the mark at markPath.
func openCommitMark(markPath string, log *slog.Logger) (*commitMark, error) {
	mark, err := os.OpenFile(markPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("commit mark: %w", err)
	}
	return &commitMark{log: log, mark: mark}, nil
}

// record notes that the store is durable up to transaction txid.
func (m *commitMark) record(txid uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if txid <= m.last {
		return
	}
	// Fixed width, so each write replaces the whole record in place.
	if _, err := m.mark.WriteAt(fmt.Appendf(nil, "%020d\n", txid), 0); err != nil {
		if !m.failed {
			m.failed = true
			m.log.Warn("cannot record the last committed transaction; rollbacks of the store will go unnoticed", "file", m.mark.Name(), "err", err)
		}
		return
	}
	m.last = txid
}

// Close closes the mark's file.
func (m *commitMark) Close() error {
	return m.mark.Close()
}

// checkCommitMark compares the store as found on disk, before bbolt opens
// it, with the mark the last daemon left, and returns a warning (also
// logged) when the store is older or empty where it was not; "" when all
// is well or there is no mark yet.
func checkCommitMark(storePath, markPath string, log *slog.Logger) (warning string, err error) {
	data, err := os.ReadFile(markPath)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("commit mark: %w", err)
	}
	mark, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		log.Warn("commit mark unreadable; ignoring it", "file", markPath, "content", strconv.Quote(string(data)))
		return "", nil
	}
	txid, empty, err := storeTxid(storePath)
	if err != nil {
		// bbolt's own open says what is wrong with the file.
		return "", nil
	}
	switch {
	case empty && mark > 0:
		warning = fmt.Sprintf("the store %s is empty but held committed leases (transaction %d) when the daemon last wrote it: its leases are lost; restore it from a backup if you have one", storePath, mark)
	case !empty && txid < mark:
		warning = fmt.Sprintf("the store %s opened at transaction %d, older than the last committed %d: it was rolled back and leases acknowledged since are lost", storePath, txid, mark)
	default:
		return "", nil
	}
	log.Error("STORE ROLLED BACK: "+warning, "store", storePath, "mark", markPath)
	return warning, nil
}
