//go:build unix

package daemon

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// currentUser is the daemon's user as the kill-safety rules compare it.
func currentUser() (user string, admin bool, err error) {
	return strconv.Itoa(os.Getuid()), os.Geteuid() == 0, nil
}

// checkOwner refuses state (what, at path) owned by anyone but the
// daemon's user or root: whoever owns the state dir or the store decides
// which processes the daemon stops.
func checkOwner(what, path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	me := os.Geteuid()
	if int(st.Uid) == me || st.Uid == 0 {
		return nil
	}
	return fmt.Errorf("%s %s is owned by %s, not by %s (the daemon's user) or root: its owner could steer which processes the daemon stops; use a state dir of your own (--state-dir) or run chown %d %s",
		what, path, userName(int(st.Uid)), userName(me), me, path)
}

// userName is "name (uid N)", or "uid N" when the name is unknown.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}
