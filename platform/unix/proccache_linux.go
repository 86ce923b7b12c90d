package unix

import (
	"sync"
	"time"

	xunix "golang.org/x/sys/unix"

	"github.com/portbroker/portbroker/broker"
)

// Owners ask for port after port; reading /proc for each ask costs eight
// syscalls. procCache keeps what a lookup found together with a pidfd of
// the process: while the pidfd shows the process alive, its PID cannot
// name another process, so PID and start time still hold, and one poll
// proves it. Name and uid can change while a process lives (exec, setuid),
// so an entry serves for procCacheAge at most.
const (
	procCacheSize = 128
	procCacheAge  = time.Second
)

type procCache struct {
	mu  sync.Mutex
	m   map[int]cachedProc
	now func() time.Time
}

type cachedProc struct {
	pidfd int
	p     broker.Process
	at    time.Time
}

func newProcCache() *procCache {
	return &procCache{m: make(map[int]cachedProc), now: time.Now}
}

// get returns the cached process with this PID if it is young and alive.
func (c *procCache) get(pid int) (broker.Process, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[pid]
	if !ok {
		return broker.Process{}, false
	}
	if c.now().Sub(e.at) < procCacheAge && !pidfdExited(e.pidfd) {
		return e.p, true
	}
	delete(c.m, pid)
	xunix.Close(e.pidfd)
	return broker.Process{}, false
}

// put keeps p with pidfd, which it then owns.
func (c *procCache) put(pidfd int, p broker.Process) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[p.PID]; ok {
		xunix.Close(old.pidfd)
		delete(c.m, p.PID)
	}
	for pid, e := range c.m {
		if len(c.m) < procCacheSize {
			break
		}
		delete(c.m, pid) // any: map order is random enough to spread evictions
		xunix.Close(e.pidfd)
	}
	c.m[p.PID] = cachedProc{pidfd: pidfd, p: p, at: c.now()}
}

// close drops every entry.
func (c *procCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for pid, e := range c.m {
		xunix.Close(e.pidfd)
		delete(c.m, pid)
	}
}

// pidfdExited reports whether the process behind pidfd has exited: a
// pidfd polls readable from then on. An error counts as exited.
func pidfdExited(pidfd int) bool {
	fds := []xunix.PollFd{{Fd: int32(pidfd), Events: xunix.POLLIN}}
	for {
		n, err := xunix.Poll(fds, 0)
		if err == xunix.EINTR {
			continue
		}
		return err != nil || n != 0
	}
}

// lookupCached is lookup through the cache: a hit costs one poll; a miss
// opens a pidfd before reading /proc and keeps the facts only if the
// process is still alive after the read, so they are its own.
func (t procTable) lookupCached(pid int) (broker.Process, error) {
	if pid <= 0 {
		return t.lookupUncached(pid)
	}
	if p, ok := t.cache.get(pid); ok {
		return p, nil
	}
	pidfd, ferr := xunix.PidfdOpen(pid, 0)
	p, err := t.lookupUncached(pid)
	switch {
	case ferr != nil:
		// No pidfd (an old kernel, a thread id, the fd limit): no caching.
	case err != nil || pidfdExited(pidfd):
		xunix.Close(pidfd)
	default:
		t.cache.put(pidfd, p)
	}
	return p, err
}
