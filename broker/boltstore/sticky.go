package boltstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/portbroker/portbroker/broker"
)

// MaxLastPorts bounds how many names' last ports the file keeps: the most
// recently used ones, at least MaxLastPorts*7/8 of them once that many
// names were used. It matches the broker's memory of names.
const MaxLastPorts = broker.NameMemory

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

// recency keeps the last_ports bucket within its cap, oldest names out
// first, without holding the names in memory: each record carries the
// sequence of its last use, and when the bucket passes max records, one
// scan drops the oldest down to max*7/8, so a scan comes once per max/8
// new names. Only the caller making a commit uses it.
type recency struct {
	max int
	n   int    // records in the bucket
	seq uint64 // the highest sequence given out
}

func newRecency(max int) *recency { return &recency{max: max} }

// load counts the bucket's records and finds the highest sequence.
func (r *recency) load(b *bolt.Bucket) error {
	r.n, r.seq = 0, 0
	return b.ForEach(func(k, v []byte) error {
		lp, err := decodeLastPort(v)
		if err != nil {
			return fmt.Errorf("last port record %q: %w", k, err)
		}
		r.n++
		r.seq = max(r.seq, lp.seq)
		return nil
	})
}

// touch records a use of key in bucket b and forgets the oldest names
// once the bucket passes the cap.
func (r *recency) touch(b *bolt.Bucket, key []byte, port uint16) error {
	r.seq++
	fresh := b.Get(key) == nil
	if err := b.Put(key, encodeLastPort(lastPort{port: port, seq: r.seq})); err != nil {
		return err
	}
	if fresh {
		r.n++
	}
	if r.n <= r.max {
		return nil
	}
	return r.trim(b)
}

// trim drops the oldest records, leaving max*7/8.
func (r *recency) trim(b *bolt.Bucket) error {
	seqs := make([]uint64, 0, r.n)
	err := b.ForEach(func(k, v []byte) error {
		lp, err := decodeLastPort(v)
		if err != nil {
			return fmt.Errorf("last port record %q: %w", k, err)
		}
		seqs = append(seqs, lp.seq)
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(seqs)
	keep := r.max - r.max/8
	if len(seqs) <= keep {
		r.n = len(seqs)
		return nil
	}
	cut := seqs[len(seqs)-keep] // the oldest sequence kept
	var drop [][]byte
	err = b.ForEach(func(k, v []byte) error {
		if lp, _ := decodeLastPort(v); lp.seq < cut {
			drop = append(drop, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("forget the last port of %q: %w", k, err)
		}
	}
	r.n = len(seqs) - len(drop)
	return nil
}

// salvageLastPorts reads what it can of the last ports in a file that
// failed verification: every record that decodes, none that does not. It
// never fails; a file too damaged to open yields nothing.
func salvageLastPorts(path string) map[broker.NameKey]lastPort {
	got := make(map[broker.NameKey]lastPort)
	db, f, err := openReadOnly(path, DefaultLockTimeout)
	if err != nil {
		return got
	}
	_ = guard(func() error {
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
	if guard(db.Close) != nil && f != nil {
		f.Close()
	}
	return got
}
