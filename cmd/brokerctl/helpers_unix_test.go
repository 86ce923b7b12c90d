//go:build unix

package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helper runs a helper mode of the test binary and returns its exit code.
// Modes print one line to stdout once they are set up.
func helper(mode string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", mode, err)
		return 3
	}
	switch mode {
	case "up":
		return upHelper(os.Args[1:])
	case "env":
		// What brokerctl run passed; exits with $HELPER_EXIT.
		fmt.Printf("pid=%d\nPORT=%s\nPORTBROKER_PORT=%s\nargs=%s\n", os.Getpid(), os.Getenv("PORT"), os.Getenv("PORTBROKER_PORT"), strings.Join(os.Args[1:], " "))
		code, _ := strconv.Atoi(os.Getenv("HELPER_EXIT"))
		return code
	case "selfkill":
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		time.Sleep(time.Minute)
		return fail(errors.New("survived SIGTERM"))
	case "wait":
		// An idle process; signals end it.
		fmt.Println("ready")
		time.Sleep(time.Hour)
		return 0
	case "listen":
		// Holds $PORT (any port when unset) until a signal ends it:
		// "PID PORT [GRANDCHILD-PID]".
		ln, err := net.Listen("tcp", ":"+os.Getenv("PORT"))
		if err != nil {
			return fail(err)
		}
		if name := os.Getenv("HELPER_COMM"); name != "" {
			setProcessName(name)
		}
		line := fmt.Sprintf("%d %d", os.Getpid(), ln.Addr().(*net.TCPAddr).Port)
		if os.Getenv("HELPER_GRANDCHILD") == "1" {
			gc, err := startHelper("wait", nil)
			if err != nil {
				return fail(err)
			}
			line += " " + strconv.Itoa(gc.Process.Pid)
		}
		fmt.Println(line)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return fail(err)
			}
			conn.Close()
		}
	case "listen-fd":
		// Serves on the socket brokerctl run passed as fd 3, binding
		// nothing itself: "ready PORT", then greets one client.
		if os.Getenv("LISTEN_FDS") != "1" || os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
			return fail(fmt.Errorf("LISTEN_FDS=%q LISTEN_PID=%q, want 1 and %d", os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_PID"), os.Getpid()))
		}
		ln, err := net.FileListener(os.NewFile(3, os.Getenv("LISTEN_FDNAMES")))
		if err != nil {
			return fail(err)
		}
		fmt.Printf("ready %d %s\n", ln.Addr().(*net.TCPAddr).Port, os.Getenv("LISTEN_FDNAMES"))
		conn, err := ln.Accept()
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(conn, "hello from fd 3")
		conn.Close()
		return 0
	case "daemonize":
		// A service that daemonizes: starts a listener on $PORT in a new
		// session, passes on its line and exits.
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), helperEnv+"=listen")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return fail(err)
		}
		if err := cmd.Start(); err != nil {
			return fail(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			return fail(err)
		}
		fmt.Print(line)
		return 0
	case "orphan-maker":
		// Starts a listener, passes on its line and exits, leaving it an
		// orphan.
		gc, err := startHelper("listen", nil)
		if err != nil {
			return fail(err)
		}
		fmt.Println(gc.line)
		return 0
	}
	return fail(errors.New("unknown mode"))
}

type helperProc struct {
	*exec.Cmd
	line string // its first line
}

// startHelper starts the test binary in a helper mode and reads its first
// line.
func startHelper(mode string, env []string) (*helperProc, error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), helperEnv+"="+mode), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("helper %s: %w", mode, err)
	}
	return &helperProc{Cmd: cmd, line: strings.TrimSpace(line)}, nil
}

// helperChild starts a helper the test owns and stops at cleanup.
func helperChild(t *testing.T, mode string, env ...string) *helperProc {
	t.Helper()
	h, err := startHelper(mode, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Process.Kill()
		h.Wait()
	})
	return h
}

// ints parses a helper's line of numbers.
func ints(t *testing.T, line string) []int {
	t.Helper()
	var out []int
	for _, f := range strings.Fields(line) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("helper line %q: %v", line, err)
		}
		out = append(out, n)
	}
	return out
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true // no /proc: kill's answer stands
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// killStray kills pid at cleanup if it still runs: for processes the test
// made but is not the parent of.
func killStray(t *testing.T, pids ...int) {
	t.Cleanup(func() {
		for _, pid := range pids {
			if alive(pid) {
				t.Errorf("pid %d still running at the end of the test; killing it", pid)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}

// waitGone waits until none of pids runs, up to failAfter.
func waitGone(t *testing.T, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("pid %d still runs %v later", pid, failAfter)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
