package unix

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	xunix "golang.org/x/sys/unix"

	"github.com/portbroker/portbroker/broker"
)

// NewExitWatcher returns a watcher that learns of exits from the kernel: a
// pidfd per process, all waited on by one goroutine with epoll. Where
// pidfd_open is missing (Linux before 5.3) or forbidden, it falls back to
// looking processes up every pollInterval.
func (h *Host) NewExitWatcher(pollInterval time.Duration) (broker.ExitWatcher, error) {
	if err := checkPollInterval(pollInterval); err != nil {
		return nil, err
	}
	fd, err := xunix.PidfdOpen(os.Getpid(), 0)
	switch {
	case err == nil:
		xunix.Close(fd)
		return newPidfdWatcher(h.Lookup, pollInterval, xunix.PidfdOpen)
	case errors.Is(err, xunix.ENOSYS), errors.Is(err, xunix.EPERM):
		return newPollWatcher(h.Lookup, pollInterval), nil
	}
	return nil, fmt.Errorf("exit watcher: pidfd_open: %w", err)
}

// wakeID is the epoll data of the eventfd that Close writes to stop the
// loop; watched pidfds get IDs from 1 up.
const wakeID = 0

// pidfdWatcher watches processes through pidfds, which become readable when
// their process exits. Events carry an ID rather than the descriptor, so an
// event read just before Remove closed a pidfd cannot be taken for a later
// pidfd that reuses its number.
type pidfdWatcher struct {
	lookup func(int) (broker.Process, error)
	open   func(pid, flags int) (int, error) // pidfd_open; tests make it fail
	// poll watches, into the same queue, the processes pidfd_open could not
	// open for want of descriptors; started at the first such process.
	pollInterval time.Duration
	poll         *pollWatcher
	epfd         int
	wakefd       int
	queue        *exitQueue
	done         chan struct{}

	mu      sync.Mutex
	closed  bool
	lastID  uint32
	byKey   map[procKey]*pidfdWatch
	byID    map[uint32]*pidfdWatch
	loopErr error
}

type pidfdWatch struct {
	id   uint32
	fd   int
	proc broker.Process
}

func newPidfdWatcher(lookup func(int) (broker.Process, error), pollInterval time.Duration, open func(pid, flags int) (int, error)) (*pidfdWatcher, error) {
	epfd, err := xunix.EpollCreate1(xunix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("exit watcher: epoll_create1: %w", err)
	}
	wakefd, err := xunix.Eventfd(0, xunix.EFD_CLOEXEC|xunix.EFD_NONBLOCK)
	if err != nil {
		xunix.Close(epfd)
		return nil, fmt.Errorf("exit watcher: eventfd: %w", err)
	}
	ev := xunix.EpollEvent{Events: xunix.EPOLLIN, Fd: wakeID}
	if err := xunix.EpollCtl(epfd, xunix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		xunix.Close(wakefd)
		xunix.Close(epfd)
		return nil, fmt.Errorf("exit watcher: epoll_ctl: %w", err)
	}
	w := &pidfdWatcher{
		lookup:       lookup,
		open:         open,
		pollInterval: pollInterval,
		epfd:         epfd,
		wakefd:       wakefd,
		queue:        startExitQueue(),
		done:         make(chan struct{}),
		byKey:        make(map[procKey]*pidfdWatch),
		byID:         make(map[uint32]*pidfdWatch),
	}
	go w.run()
	return w, nil
}

// Add watches p. If p has already exited, or its PID now names another
// process, its exit is delivered at once.
func (w *pidfdWatcher) Add(p broker.Process) error {
	// pidfd_open itself refuses a thread, so the thread check's
	// read of /proc runs only to name the process in that refusal.
	if err := checkPID(p); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errWatcherClosed
	}
	if _, ok := w.byKey[keyOf(p)]; ok {
		return nil
	}
	if w.poll != nil && w.poll.has(p) {
		return nil
	}
	fd, err := w.open(p.PID, 0)
	switch {
	case errors.Is(err, xunix.ESRCH):
		w.queue.push(p)
		return nil
	case errors.Is(err, xunix.EMFILE), errors.Is(err, xunix.ENFILE), errors.Is(err, xunix.ENOMEM):
		// Out of descriptors: poll this one rather than leave it unwatched.
		if w.poll == nil {
			w.poll = newPollWatcherOn(w.lookup, w.pollInterval, w.queue)
		}
		return w.poll.Add(p)
	case errors.Is(err, xunix.EINVAL), errors.Is(err, xunix.ENOENT):
		// A thread id: EINVAL before Linux 6.9, ENOENT since.
		if terr := checkNotThread(p); terr != nil {
			return terr
		}
		if errors.Is(err, xunix.EINVAL) {
			return &broker.FieldError{Field: "pid", Rule: fmt.Sprintf("%d: pidfd_open refuses it (a thread id, not a process id?)", p.PID)}
		}
		return fmt.Errorf("watch %v: pidfd_open: %w", p, err)
	case err != nil:
		return fmt.Errorf("watch %v: pidfd_open: %w", p, err)
	}
	// The PID may have been reused before pidfd_open, leaving fd on another
	// process; the start time tells.
	cur, err := w.lookup(p.PID)
	if exited(p, cur, err) {
		xunix.Close(fd)
		w.queue.push(p)
		return nil
	}
	if err != nil {
		xunix.Close(fd)
		return fmt.Errorf("watch %v: %w", p, err)
	}
	pw := &pidfdWatch{id: w.newID(), fd: fd, proc: p}
	ev := xunix.EpollEvent{Events: xunix.EPOLLIN, Fd: int32(pw.id)}
	if err := xunix.EpollCtl(w.epfd, xunix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		xunix.Close(fd)
		return fmt.Errorf("watch %v: epoll_ctl: %w", p, err)
	}
	w.byKey[keyOf(p)] = pw
	w.byID[pw.id] = pw
	return nil
}

// newID returns an ID no current watch has. Call with w.mu held.
func (w *pidfdWatcher) newID() uint32 {
	for {
		w.lastID++
		if _, taken := w.byID[w.lastID]; w.lastID != wakeID && !taken {
			return w.lastID
		}
	}
}

// Remove stops watching p. An exit found before Remove may still arrive.
func (w *pidfdWatcher) Remove(p broker.Process) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if pw, ok := w.byKey[keyOf(p)]; ok {
		w.forget(pw)
	}
	if w.poll != nil {
		w.poll.Remove(p)
	}
}

// forget drops pw and closes its pidfd. Call with w.mu held.
func (w *pidfdWatcher) forget(pw *pidfdWatch) {
	delete(w.byKey, keyOf(pw.proc))
	delete(w.byID, pw.id)
	// Closing would deregister the pidfd too, unless a forked child still
	// holds a copy.
	xunix.EpollCtl(w.epfd, xunix.EPOLL_CTL_DEL, pw.fd, nil)
	xunix.Close(pw.fd)
}

// Exits delivers each watched exit once. It is closed by Close.
func (w *pidfdWatcher) Exits() <-chan broker.Process { return w.queue.out }

// Close stops watching, waits for the watcher's goroutines, closes every
// descriptor and closes Exits. It returns the error that stopped the
// watcher early, if any.
func (w *pidfdWatcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()

	one := []byte{1, 0, 0, 0, 0, 0, 0, 0} // any nonzero count, either byte order
	if _, err := xunix.Write(w.wakefd, one); err != nil && err != xunix.EAGAIN {
		return fmt.Errorf("exit watcher: wake: %w", err)
	}
	<-w.done

	w.mu.Lock()
	for _, pw := range w.byID {
		w.forget(pw)
	}
	err := w.loopErr
	poll := w.poll
	w.mu.Unlock()
	if poll != nil {
		poll.Close()
	}
	xunix.Close(w.wakefd)
	xunix.Close(w.epfd)
	w.queue.close()
	return err
}

func (w *pidfdWatcher) run() {
	defer close(w.done)
	events := make([]xunix.EpollEvent, 64)
	for {
		n, err := xunix.EpollWait(w.epfd, events, -1)
		if err == xunix.EINTR {
			continue
		}
		if err != nil {
			w.mu.Lock()
			w.loopErr = fmt.Errorf("exit watcher: epoll_wait: %w", err)
			w.mu.Unlock()
			return
		}
		for _, ev := range events[:n] {
			id := uint32(ev.Fd)
			if id == wakeID {
				return
			}
			w.mu.Lock()
			if pw, ok := w.byID[id]; ok {
				w.forget(pw)
				w.queue.push(pw.proc)
			}
			w.mu.Unlock()
		}
	}
}

// threadGroup returns the thread group (process) of a Linux task id, and
// false when it cannot tell (no such task, or no /proc).
func threadGroup(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Tgid:"); ok {
			tgid, err := strconv.Atoi(strings.TrimSpace(rest))
			return tgid, err == nil
		}
	}
	return 0, false
}
