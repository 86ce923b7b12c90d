package windows

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	xwin "golang.org/x/sys/windows"

	"github.com/portbroker/portbroker/broker"
)

var (
	kernel32                  = xwin.NewLazySystemDLL("kernel32.dll")
	procGetConsoleProcessList = kernel32.NewProc("GetConsoleProcessList")
	user32                    = xwin.NewLazySystemDLL("user32.dll")
	procPostMessage           = user32.NewProc("PostMessageW")
)

const (
	wmClose = 0x0010 // WM_CLOSE
	// taskkillTimeout bounds the taskkill fallback.
	taskkillTimeout = 30 * time.Second
)

// Terminate asks p to stop, in the first of these ways that applies:
//
//   - CTRL_BREAK_EVENT to its console process group, when p leads a group
//     that a Job in this process started (with CREATE_NEW_PROCESS_GROUP) and
//     still shares this process's console. Every process of the group gets
//     it, so a dev server's workers stop with it.
//   - WM_CLOSE posted to each of its visible top-level windows.
//
// GenerateConsoleCtrlEvent is never tried on other processes: given a PID
// that does not lead a process group, Windows signals every process on the
// console instead, this one included (microsoft/terminal#335), and
// attaching to another process's console would detach the daemon from its
// own. Terminate returns nil once a request was delivered, and otherwise an
// error matching broker.ErrUnsupported saying that p has no graceful path,
// after which the caller waits its grace period and calls Kill.
func (h *Host) Terminate(p broker.Process) error {
	hp, err := openSame(p, 0)
	if err != nil {
		return err
	}
	// The open handle keeps p's PID from naming another process while the
	// signal is sent.
	defer xwin.CloseHandle(hp)
	if consoleGroups.has(p) && onOurConsole(p.PID) {
		if err := xwin.GenerateConsoleCtrlEvent(xwin.CTRL_BREAK_EVENT, uint32(p.PID)); err == nil {
			return nil
		}
	}
	n, err := closeWindows(uint32(p.PID))
	switch {
	case n > 0:
		return nil
	case err != nil:
		return fmt.Errorf("terminate %s: close its windows: %w", p, err)
	}
	return fmt.Errorf("terminate %s: %w: it leads no console process group started here and has no visible window to close", p, broker.ErrUnsupported)
}

// Kill stops p at once with TerminateProcess (exit code 1). It returns an
// error matching broker.ErrNoProcess when p has exited or its PID names
// another process, and one matching broker.ErrPermission when Windows
// refuses.
func (h *Host) Kill(p broker.Process) error {
	hp, err := openSame(p, xwin.PROCESS_TERMINATE)
	if err != nil {
		return err
	}
	defer xwin.CloseHandle(hp)
	if err := xwin.TerminateProcess(hp, 1); err != nil {
		// TerminateProcess also fails with access denied on a process
		// that is already exiting.
		if checkRunning(hp, true) != nil {
			return fmt.Errorf("kill %s: %w", p, broker.ErrNoProcess)
		}
		if errors.Is(err, xwin.ERROR_ACCESS_DENIED) {
			return fmt.Errorf("kill %s: %w: %w", p, broker.ErrPermission, err)
		}
		return fmt.Errorf("kill %s: %w", p, err)
	}
	return nil
}

// KillTreeFallback runs `taskkill /F /T /PID n` on p, the last resort when
// TerminateProcess on each process of a snapshot walk left some alive.
// taskkill follows parent PIDs without comparing start times, so it may
// reach a process that merely reuses a dead parent's PID; that is why it is
// never the first choice. p is checked just before, so at least the root is
// the process meant. Wine's taskkill does not follow /T.
func (h *Host) KillTreeFallback(p broker.Process) error {
	hp, err := openSame(p, 0)
	if err != nil {
		return err
	}
	// Hold p's PID while taskkill runs.
	defer xwin.CloseHandle(hp)
	dir, err := xwin.GetSystemDirectory()
	if err != nil {
		return fmt.Errorf("taskkill %s: %w", p, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), taskkillTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "taskkill.exe"), "/F", "/T", "/PID", strconv.Itoa(p.PID))
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: xwin.CREATE_NO_WINDOW}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("taskkill /F /T /PID %d: %w: %.300s", p.PID, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// consoleGroups are the console process groups this process created, by
// their leader. It is process-wide because the console is.
var consoleGroups = &groupSet{m: make(map[procKey]bool)}

type groupSet struct {
	mu sync.Mutex
	m  map[procKey]bool
}

func (g *groupSet) add(p broker.Process) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.m[keyOf(p)] = true
}

func (g *groupSet) remove(p broker.Process) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.m, keyOf(p))
}

func (g *groupSet) has(p broker.Process) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.m[keyOf(p)]
}

// onOurConsole reports whether pid is attached to this process's console.
// A process without a console (a service) has none to share.
func onOurConsole(pid int) bool {
	list := make([]uint32, 64)
	for range 4 {
		n, _, _ := procGetConsoleProcessList.Call(uintptr(unsafe.Pointer(&list[0])), uintptr(len(list)))
		switch {
		case n == 0:
			return false
		case int(n) > len(list):
			list = make([]uint32, n+16)
			continue
		}
		return slices.Contains(list[:n], uint32(pid))
	}
	return false
}

// closeWindows posts WM_CLOSE to the visible top-level windows of pid and
// returns how many it reached. Hidden windows are left alone: they are
// helper windows (IME, message sinks) whose owners do not expect to be told
// to close.
func closeWindows(pid uint32) (int, error) {
	hwnds, err := topLevelWindows(pid)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, hw := range hwnds {
		if r, _, err := procPostMessage.Call(uintptr(hw), wmClose, 0, 0); r == 0 {
			errs = append(errs, fmt.Errorf("post WM_CLOSE to window %#x: %w", hw, err))
			continue
		}
		n++
	}
	if n > 0 {
		return n, nil
	}
	return 0, errors.Join(errs...)
}

// windowSearch is the one EnumWindows walk in progress: EnumWindows calls
// back on the calling thread, and a Go callback cannot safely be handed a Go
// pointer through the walk's LPARAM, so the walk's state lives here, under
// the lock.
var windowSearch struct {
	sync.Mutex
	pid   uint32
	found []xwin.HWND
}

// enumWindowsCallback is made once: Windows callbacks made by NewCallback
// are never freed and their number is limited.
var enumWindowsCallback = sync.OnceValue(func() uintptr {
	return xwin.NewCallback(func(hwnd xwin.HWND, _ uintptr) uintptr {
		var pid uint32
		if _, err := xwin.GetWindowThreadProcessId(hwnd, &pid); err == nil && pid == windowSearch.pid && xwin.IsWindowVisible(hwnd) {
			windowSearch.found = append(windowSearch.found, hwnd)
		}
		return 1 // go on
	})
})

func topLevelWindows(pid uint32) ([]xwin.HWND, error) {
	cb := enumWindowsCallback()
	windowSearch.Lock()
	defer windowSearch.Unlock()
	windowSearch.pid, windowSearch.found = pid, nil
	err := xwin.EnumWindows(cb, nil)
	found := windowSearch.found
	windowSearch.found = nil
	if err != nil {
		// A process without a desktop (a service in session 0) has no
		// windows to enumerate.
		return nil, fmt.Errorf("enumerate windows: %w", err)
	}
	return found, nil
}
