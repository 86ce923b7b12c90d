package boltstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/portbroker/portbroker/broker"
)

// The boot file, beside the state file, names the boot that last opened
// the store. Lease changes are written without fsync (a daemon killed with
// kill -9 loses nothing: its writes sit in the page cache), so only a power
// loss or an OS crash can lose or tear them, and after either of those
// every owner is dead and every lease void. The boot file tells the two
// cases apart: a store opened in a new boot voids its leases, and may be
// rebuilt from what it still holds if it was torn; a store torn within one
// boot was damaged some other way, and is refused.

// bootSuffix names the boot file: the state file's name plus this.
const bootSuffix = ".boot"

// maxBootID bounds a boot id, so that a damaged boot file cannot be large.
const maxBootID = 256

// bootTimeSlack: ids made by broker.BootTimeID (platforms without a boot
// UUID) name one boot when they differ by less than this. The OS adjusts
// its boot time when the wall clock is stepped or drifts; two boots lie
// further apart than that, by the first boot's uptime plus the reboot.
// Erring towards "one boot" is safe: the broker still checks each owner.
const bootTimeSlack = time.Minute

// sameBoot reports whether boot ids a and b name one boot.
func sameBoot(a, b string) bool {
	if a == b {
		return true
	}
	ta, oka := parseBootTime(a)
	tb, okb := parseBootTime(b)
	if !oka || !okb {
		return false
	}
	d := ta - tb
	return -int64(bootTimeSlack/time.Second) < d && d < int64(bootTimeSlack/time.Second)
}

func parseBootTime(id string) (int64, bool) {
	s, ok := strings.CutPrefix(id, broker.BootTimePrefix)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// checkBootID holds the rules for a boot id given to WithBootID.
func checkBootID(id string) error {
	if len(id) > maxBootID {
		return fmt.Errorf("boot id is %d bytes, must be at most %d", len(id), maxBootID)
	}
	for _, c := range id {
		if c <= ' ' || c > '~' {
			return fmt.Errorf("boot id %q must be printable ASCII without spaces", id)
		}
	}
	return nil
}

// readBootFile returns the boot id in the file at path, "" when there is
// no file. A file whose content is not a boot id reads as an id no boot
// has, so that the store is treated as from another boot.
func readBootFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read boot file: %w", err)
	}
	id := strings.TrimSuffix(string(b), "\n")
	if id == "" || checkBootID(id) != nil {
		return "unreadable", nil
	}
	return id, nil
}

// writeBootFile replaces the file at path with id, durably: the state it
// vouches for has been synced before.
func writeBootFile(path, id string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write boot file: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails once renamed
	if _, err := tmp.WriteString(id + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("write boot file %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync boot file %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write boot file %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace boot file: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// removeBootFile forgets the boot, for a store opened without a boot id:
// its leases must not later be voided on the word of a stale file.
func removeBootFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove boot file: %w", err)
	}
	return nil
}
