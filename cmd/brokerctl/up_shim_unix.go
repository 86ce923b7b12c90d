//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
)

// maxLaunchMessage bounds what a shim reads: a command line and an
// environment.
const maxLaunchMessage = 4 << 20

// runUpShim is a service's side of brokerctl up (see up_unix.go): args are
// NAME COMM. It says it is ready, waits for its command and execs it, so
// it returns only on failure, with the exit code to use.
func runUpShim(args []string) int {
	if len(args) != 2 {
		fmt.Fprintf(os.Stderr, "brokerctl: %s is brokerctl up's own helper, not a command\n", upShimArg)
		return 2
	}
	name := args[0]
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "brokerctl: up %s: %s\n", name, fmt.Sprintf(format, a...))
		return code
	}
	setProcessName(args[1])
	ctl := os.NewFile(shimFD, "brokerctl-up")
	if _, err := ctl.Write([]byte(shimReady)); err != nil {
		return fail(1, "tell brokerctl up the service is ready: %v", err)
	}
	data, err := io.ReadAll(io.LimitReader(ctl, maxLaunchMessage))
	ctl.Close()
	if err != nil {
		return fail(1, "receive the command: %v", err)
	}
	if len(data) == 0 {
		return 1 // brokerctl up gave up on the service and says why
	}
	var msg upLaunch
	if err := json.Unmarshal(data, &msg); err != nil || len(msg.Argv) == 0 {
		return fail(1, "brokerctl up sent no command (%v)", err)
	}
	if err := os.Chdir(msg.Dir); err != nil {
		return fail(1, "%v", err)
	}
	path, err := exec.LookPath(msg.Argv[0])
	if err != nil {
		return fail(127, "%v", err)
	}
	err = syscall.Exec(path, msg.Argv, msg.Env)
	return fail(126, "exec %s: %v", path, err)
}
