package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"unsafe"

	xwin "golang.org/x/sys/windows"
)

// squatEnv makes the test binary a squatter: it listens on loopback TCP,
// prints "pid=" and "port=", then "ready", and holds the port until it is
// stopped. As "console" it waits for the end of its stdin; as "window" it
// opens a visible window and exits 0 when the window is closed (WM_CLOSE),
// the graceful stop Windows offers a GUI program.
const squatEnv = "BROKERCTL_TEST_WINDOWS_SQUAT"

func init() {
	mode := os.Getenv(squatEnv)
	if os.Getenv(cliEnv) == "1" || mode == "" {
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "squatter:", err)
		os.Exit(2)
	}
	defer ln.Close()
	report := func() {
		fmt.Printf("pid=%d\nport=%d\nready\n", os.Getpid(), ln.Addr().(*net.TCPAddr).Port)
	}
	switch mode {
	case "console":
		report()
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	case "window":
		os.Exit(windowUntilClosed(report))
	}
	fmt.Fprintf(os.Stderr, "squatter: unknown mode %q\n", mode)
	os.Exit(2)
}

// squatter starts a squatter process in mode and returns it, its pid and
// its port. It stops it when the test ends, in case the test did not.
func squatter(t *testing.T, mode string) (cmd *exec.Cmd, pid, port int) {
	t.Helper()
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), squatEnv+"="+mode)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	got := report(t, bufio.NewReader(stdout))
	pid, err = strconv.Atoi(got["pid"])
	if err != nil || pid != cmd.Process.Pid {
		t.Fatalf("squatter said pid=%q; its pid is %d", got["pid"], cmd.Process.Pid)
	}
	port, err = strconv.Atoi(got["port"])
	if err != nil || port <= 0 {
		t.Fatalf("squatter said port=%q", got["port"])
	}
	return cmd, pid, port
}

// canBind reports whether this process can listen on 127.0.0.1:port.
func canBind(port int) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

var (
	user32               = xwin.NewLazySystemDLL("user32.dll")
	procRegisterClassEx  = user32.NewProc("RegisterClassExW")
	procCreateWindowEx   = user32.NewProc("CreateWindowExW")
	procDefWindowProc    = user32.NewProc("DefWindowProcW")
	procGetMessage       = user32.NewProc("GetMessageW")
	procTranslateMessage = user32.NewProc("TranslateMessage")
	procDispatchMessage  = user32.NewProc("DispatchMessageW")
	procPostQuitMessage  = user32.NewProc("PostQuitMessage")
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

// windowUntilClosed opens a visible window, calls ready, and pumps messages
// until the window is destroyed, which DefWindowProc does on WM_CLOSE. It
// returns the exit code: 0 after WM_CLOSE, 2 on a failure.
func windowUntilClosed(ready func()) int {
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
	class, _ := xwin.UTF16PtrFromString("brokerctlTestSquatter")
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
	ready()
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
