package boltstore

import (
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/portbroker/portbroker/broker"
)

// MaxLastPorts is how many names' last ports the file keeps: the most
// recently used ones. It matches the broker's memory of names, so that a
// restart remembers what a running broker would.
const MaxLastPorts = 4096

// lastPort is one name's remembered port, with the commit sequence that
// last used it, so that the oldest can be forgotten first.
type lastPort struct {
	port uint16
	seq  uint64
}

// encodeLastPort is the record's value: the port, then the sequence.
func encodeLastPort(v lastPort) []byte {
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 10), v.port)
	return binary.BigEndian.AppendUint64(b, v.seq)
}

func decodeLastPort(b []byte) (lastPort, error) {
	if len(b) != 10 {
		return lastPort{}, fmt.Errorf("last port record is %d bytes, want 10", len(b))
	}
	v := lastPort{port: binary.BigEndian.Uint16(b), seq: binary.BigEndian.Uint64(b[2:])}
	if v.port == 0 {
		return lastPort{}, errors.New("port 0")
	}
	return v, nil
}

// recency orders the names in the last_ports bucket, most recent first.
// Only the committer uses it.
type recency struct {
	max   int
	order *list.List // of string (encoded name key), front = newest
	at    map[string]*list.Element
	seq   uint64 // the highest sequence given out
}

func newRecency(max int) *recency {
	return &recency{max: max, order: list.New(), at: make(map[string]*list.Element)}
}

// load fills r from the bucket, oldest last.
func (r *recency) load(b *bolt.Bucket) error {
	type rec struct {
		key string
		seq uint64
	}
	var recs []rec
	err := b.ForEach(func(k, v []byte) error {
		lp, err := decodeLastPort(v)
		if err != nil {
			return fmt.Errorf("last port record %q: %w", k, err)
		}
		recs = append(recs, rec{string(k), lp.seq})
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(recs, func(a, b rec) int {
		switch {
		case a.seq > b.seq:
			return -1
		case a.seq < b.seq:
			return 1
		}
		return 0
	})
	r.order.Init()
	clear(r.at)
	r.seq = 0
	for _, x := range recs {
		r.at[x.key] = r.order.PushBack(x.key)
		r.seq = max(r.seq, x.seq)
	}
	return nil
}

// touch records a use of key in bucket b and forgets the oldest names
// beyond the cap.
func (r *recency) touch(b *bolt.Bucket, key []byte, port uint16) error {
	r.seq++
	if err := b.Put(key, encodeLastPort(lastPort{port: port, seq: r.seq})); err != nil {
		return err
	}
	if e, ok := r.at[string(key)]; ok {
		r.order.MoveToFront(e)
	} else {
		k := string(key)
		r.at[k] = r.order.PushFront(k)
	}
	for r.order.Len() > r.max {
		old := r.order.Remove(r.order.Back()).(string)
		delete(r.at, old)
		if err := b.Delete([]byte(old)); err != nil {
			return fmt.Errorf("forget the last port of %q: %w", old, err)
		}
	}
	return nil
}

// salvageLastPorts reads what it can of the last ports in a file that
// failed verification: every record that decodes, none that does not. It
// never fails; a file too damaged to open yields nothing.
func salvageLastPorts(path string) map[broker.NameKey]lastPort {
	got := make(map[broker.NameKey]lastPort)
	// bbolt leaves its file open if it panics; keep hold of it to close.
	var f *os.File
	openFile := func(name string, flag int, perm os.FileMode) (*os.File, error) {
		var err error
		f, err = os.OpenFile(name, flag, perm)
		return f, err
	}
	var db *bolt.DB
	_ = guard(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: DefaultLockTimeout, OpenFile: openFile})
		if err != nil {
			return err
		}
		return db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketLastPorts)
			if b == nil {
				return nil
			}
			return b.ForEach(func(k, v []byte) error {
				key, kerr := decodeNameKey(k)
				lp, verr := decodeLastPort(v)
				if kerr == nil && verr == nil && len(key.Namespace)+len(key.Name) <= maxNameBytes {
					got[key] = lp
				}
				return nil
			})
		})
	})
	if db == nil || guard(db.Close) != nil {
		if f != nil {
			f.Close()
		}
	}
	return got
}
