package boltstore

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/portbroker/portbroker/broker"
)

// validFile writes a state file holding two leases and returns its path.
func validFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "leases.db")
	s := openStore(t, path)
	for i := 1; i <= 2; i++ {
		if err := s.Put(t.Context(), lease(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// update changes a file with bbolt directly, as another program might.
func update(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// pagesEnd is where a valid file's last page in use ends.
func pagesEnd(t *testing.T, path string) (end int64, pageSize int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		end = tx.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return end, db.Info().PageSize
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// damage is one way a state file can be broken.
type damage struct {
	name string
	// damage breaks the valid file at path.
	damage func(t *testing.T, path string)
	// says is what the error must say besides the path and the remedy.
	says string
}

var damages = []damage{
	{
		name: "garbage",
		damage: func(t *testing.T, path string) {
			writeFile(t, path, bytes.Repeat([]byte("not a bbolt file\n"), 2000))
		},
		says: "not a bbolt database",
	},
	{
		name:   "a few bytes",
		damage: func(t *testing.T, path string) { writeFile(t, path, []byte("hello")) },
		says:   "cannot be read",
	},
	{
		name: "truncated by a page",
		damage: func(t *testing.T, path string) {
			end, pageSize := pagesEnd(t, path)
			if err := os.Truncate(path, end-int64(pageSize)); err != nil {
				t.Fatal(err)
			}
		},
		says: "truncated",
	},
	{
		name: "truncated to its meta pages",
		damage: func(t *testing.T, path string) {
			_, pageSize := pagesEnd(t, path)
			if err := os.Truncate(path, 2*int64(pageSize)); err != nil {
				t.Fatal(err)
			}
		},
		says: "truncated",
	},
	{
		name: "truncated inside the meta pages",
		damage: func(t *testing.T, path string) {
			_, pageSize := pagesEnd(t, path)
			if err := os.Truncate(path, int64(pageSize)+100); err != nil {
				t.Fatal(err)
			}
		},
		says: "cannot be read",
	},
	{
		name: "bad checksum on both meta pages",
		damage: func(t *testing.T, path string) {
			_, pageSize := pagesEnd(t, path)
			b := readFile(t, path)
			// A byte of each meta page's transaction ID, which the
			// checksum covers.
			const txidOffset = 64
			b[txidOffset] ^= 0xff
			b[pageSize+txidOffset] ^= 0xff
			writeFile(t, path, b)
		},
		says: "bad checksum",
	},
	{
		name: "another program's bbolt file",
		damage: func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			update(t, path, func(tx *bolt.Tx) error {
				_, err := tx.CreateBucket([]byte("widgets"))
				return err
			})
		},
		says: "not a portbroker state file",
	},
	{
		name: "newer schema",
		damage: func(t *testing.T, path string) {
			update(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte("3")) })
		},
		says: "schema version 3 is newer than this portbrokerd reads (2)",
	},
	{
		name: "unreadable schema",
		damage: func(t *testing.T, path string) {
			update(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keySchema) })
		},
		says: "schema version",
	},
	{
		name: "leases bucket missing",
		damage: func(t *testing.T, path string) {
			update(t, path, func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketLeases) })
		},
		says: `bucket "leases" missing`,
	},
	{
		name: "undecodable lease record",
		damage: func(t *testing.T, path string) {
			update(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketLeases).Put([]byte("lease-002"), []byte("{garbage")) })
		},
		says: `lease record "lease-002"`,
	},
	{
		name: "lease record of an unknown version",
		damage: func(t *testing.T, path string) {
			update(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket(bucketLeases).Put([]byte("lease-002"), []byte(`{"v":2,"id":"lease-002"}`))
			})
		},
		says: `lease record "lease-002": record version 2`,
	},
	{
		name: "lease record under another key",
		damage: func(t *testing.T, path string) {
			update(t, path, func(tx *bolt.Tx) error {
				rec, err := encodeLease(lease(1))
				if err != nil {
					return err
				}
				return tx.Bucket(bucketLeases).Put([]byte("lease-777"), rec)
			})
		},
		says: `lease record "lease-777" holds lease "lease-001"`,
	},
	{
		name: "lease record is a bucket",
		damage: func(t *testing.T, path string) {
			update(t, path, func(tx *bolt.Tx) error {
				_, err := tx.Bucket(bucketLeases).CreateBucket([]byte("lease-555"))
				return err
			})
		},
		says: `lease record "lease-555" is a bucket`,
	},
	{
		name: "bad last port",
		damage: func(t *testing.T, path string) {
			update(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket(bucketLastPorts).Put(encodeNameKey(lease(1).Key()), []byte{1, 2, 3})
			})
		},
		says: "last port record",
	},
}

func TestOpenCorrupt(t *testing.T) {
	for _, tt := range damages {
		t.Run(tt.name, func(t *testing.T) {
			path := validFile(t)
			tt.damage(t, path)
			before := readFile(t, path)

			s, err := Open(path)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want ErrCorrupt")
			}
			t.Logf("Open: %v", err)
			if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrLocked) || errors.Is(err, broker.ErrInvalid) {
				t.Fatalf("Open = %v, want only ErrCorrupt", err)
			}
			for _, want := range []string{path, tt.says, "move it aside, or start portbrokerd with --recover"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Open error %q does not say %q", err, want)
				}
			}
			if after := readFile(t, path); !bytes.Equal(before, after) {
				t.Errorf("Open changed the file: %d bytes before, %d after", len(before), len(after))
			}
		})
	}
}

// Load decodes every record too: one damaged while the store is open is
// reported by key, not skipped.
func TestLoadCorruptRecord(t *testing.T) {
	s := openStore(t, validFile(t))
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLeases).Put([]byte("lease-002"), []byte(`{"v":1,"id":"lease-002","port":"x"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Load(t.Context())
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `lease record "lease-002"`) {
		t.Errorf("Load = %v, want ErrCorrupt naming lease-002", err)
	}
}

func TestMoveAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.db")
	garbage := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 4096)
	writeFile(t, path, garbage)
	if _, err := Open(path); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}

	aside, err := MoveAside(path)
	if err != nil {
		t.Fatalf("MoveAside: %v", err)
	}
	if dir, base := filepath.Split(aside); dir != filepath.Dir(path)+string(filepath.Separator) || !strings.HasPrefix(base, "leases.db.corrupt-") {
		t.Errorf("MoveAside = %q, want leases.db.corrupt-<time> beside %s", aside, path)
	}
	if got := readFile(t, aside); !bytes.Equal(got, garbage) {
		t.Errorf("file moved aside holds %d different bytes, want the original %d", len(got), len(garbage))
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(%s) after MoveAside = %v, want it gone", path, err)
	}

	s := openStore(t, path)
	if st := load(t, s); len(st.Leases) != 0 {
		t.Errorf("Load after MoveAside = %+v, want an empty store", st)
	}
	if got := readFile(t, aside); !bytes.Equal(got, garbage) {
		t.Error("Open after MoveAside changed the file moved aside")
	}
}

func TestMoveAsideMissing(t *testing.T) {
	_, err := MoveAside(filepath.Join(t.TempDir(), "leases.db"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("MoveAside of a missing file = %v, want fs.ErrNotExist", err)
	}
}
