package windows

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	xwin "golang.org/x/sys/windows"

	"github.com/portbroker/portbroker/broker"
)

// helperLifetime bounds how long a helper lives when nothing stops it, so a
// test run that dies half-way leaks no process for long.
const helperLifetime = 5 * time.Minute

// runHelper runs the helper modes that TestMain does not run itself:
//
//	sleep      live until killed
//	tree       start a "sleep" grandchild, print its PID, live until stdin closes
//	window     open a visible top-level window, print "ready", exit 0 once it is closed
//	interrupt  print "ready", exit 0 on CTRL_BREAK (os.Interrupt)
func runHelper(mode string) int {
	go func() {
		time.Sleep(helperLifetime)
		os.Exit(3)
	}()
	switch mode {
	case "sleep":
		select {}
	case "tree":
		gc := exec.Command(os.Args[0])
		gc.Env = append(os.Environ(), helperEnv+"=sleep")
		if err := gc.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Println(gc.Process.Pid)
		gc.Process.Release()
		io.Copy(io.Discard, os.Stdin)
		return 0
	case "window":
		return windowHelper()
	case "interrupt":
		c := make(chan os.Signal, 1)
		signal.Notify(c, os.Interrupt)
		fmt.Println("ready")
		<-c
		return 0
	}
	return 2
}

var (
	testUser32           = xwin.NewLazySystemDLL("user32.dll")
	procRegisterClassEx  = testUser32.NewProc("RegisterClassExW")
	procCreateWindowEx   = testUser32.NewProc("CreateWindowExW")
	procDefWindowProc    = testUser32.NewProc("DefWindowProcW")
	procGetMessage       = testUser32.NewProc("GetMessageW")
	procTranslateMessage = testUser32.NewProc("TranslateMessage")
	procDispatchMessage  = testUser32.NewProc("DispatchMessageW")
	procPostQuitMessage  = testUser32.NewProc("PostQuitMessage")
)

// wndClassEx is WNDCLASSEXW.
type wndClassEx struct {
	size, style                        uint32
	wndProc                            uintptr
	clsExtra, wndExtra                 int32
	instance, icon, cursor, background uintptr
	menuName, className                *uint16
	iconSm                             uintptr
}

// windowHelper opens a visible window and pumps its messages until it is
// destroyed, which DefWindowProc does on WM_CLOSE.
func windowHelper() int {
	const (
		wmDestroy          = 0x0002
		wsOverlappedWindow = 0x00CF0000
		wsVisible          = 0x10000000
	)
	runtime.LockOSThread()
	wndProc := xwin.NewCallback(func(hwnd, msg, wparam, lparam uintptr) uintptr {
		if msg == wmDestroy {
			procPostQuitMessage.Call(0)
			return 0
		}
		r, _, _ := procDefWindowProc.Call(hwnd, msg, wparam, lparam)
		return r
	})
	class, _ := xwin.UTF16PtrFromString("portbrokerTestWindow")
	wc := wndClassEx{wndProc: wndProc, className: class}
	wc.size = uint32(unsafe.Sizeof(wc))
	if r, _, err := procRegisterClassEx.Call(uintptr(unsafe.Pointer(&wc))); r == 0 {
		fmt.Fprintln(os.Stderr, "RegisterClassEx:", err)
		return 2
	}
	hwnd, _, err := procCreateWindowEx.Call(0, uintptr(unsafe.Pointer(class)), uintptr(unsafe.Pointer(class)),
		wsOverlappedWindow|wsVisible, 0, 0, 200, 100, 0, 0, 0, 0)
	if hwnd == 0 {
		fmt.Fprintln(os.Stderr, "CreateWindowEx:", err)
		return 2
	}
	fmt.Println("ready")
	var msg [64]byte // MSG, with room to spare
	for {
		r, _, err := procGetMessage.Call(uintptr(unsafe.Pointer(&msg[0])), 0, 0, 0)
		switch int32(r) {
		case 0: // WM_QUIT
			return 0
		case -1:
			fmt.Fprintln(os.Stderr, "GetMessage:", err)
			return 2
		}
		procTranslateMessage.Call(uintptr(unsafe.Pointer(&msg[0])))
		procDispatchMessage.Call(uintptr(unsafe.Pointer(&msg[0])))
	}
}

// helper is a running helper child.
type helper struct {
	cmd *exec.Cmd
	out *bufio.Reader
}

// startHelper starts the test binary in mode with start (exec.Cmd.Start or
// a Job's Start). The test's cleanup closes its stdin, kills it and reaps it.
func startHelper(t *testing.T, mode string, start func(*exec.Cmd) error, args ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := start(cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	return &helper{cmd: cmd, out: bufio.NewReader(stdout)}
}

// line reads the helper's next line of output.
func (h *helper) line(t *testing.T) string {
	t.Helper()
	s, err := h.out.ReadString('\n')
	if err != nil {
		t.Fatalf("read from helper %d: %v (got %q)", h.cmd.Process.Pid, err, s)
	}
	return strings.TrimSpace(s)
}

// grandchild reads the PID a "tree" helper prints, looks the grandchild up
// and makes the test's cleanup kill it.
func (h *helper) grandchild(t *testing.T) broker.Process {
	t.Helper()
	pid, err := strconv.Atoi(h.line(t))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New().Lookup(pid)
	if err != nil {
		t.Fatalf("grandchild %d: %v", pid, err)
	}
	t.Cleanup(func() {
		if err := New().Kill(p); err != nil && !errors.Is(err, broker.ErrNoProcess) {
			t.Errorf("kill grandchild %v: %v", p, err)
		}
	})
	return p
}

// lookup looks up pid or fails the test.
func lookup(t *testing.T, pid int) broker.Process {
	t.Helper()
	p, err := New().Lookup(pid)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitGone waits until p has exited.
func waitGone(t *testing.T, p broker.Process) {
	t.Helper()
	hp, err := openSame(p, 0)
	if errors.Is(err, broker.ErrNoProcess) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer xwin.CloseHandle(hp)
	ev, err := xwin.WaitForSingleObject(hp, uint32(waitTimeout/time.Millisecond))
	if err != nil || ev != xwin.WAIT_OBJECT_0 {
		t.Fatalf("%v still runs after %v (%#x, %v)", p, waitTimeout, ev, err)
	}
}

// waitExit reaps the helper and returns its exit code.
func (h *helper) waitExit(t *testing.T) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("wait for helper: %v", err)
		}
		return h.cmd.ProcessState.ExitCode()
	case <-time.After(waitTimeout):
		h.cmd.Process.Kill()
		<-done
		t.Fatalf("helper %d still runs after %v", h.cmd.Process.Pid, waitTimeout)
	}
	panic("unreachable")
}
