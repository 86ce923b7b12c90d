package main

import (
	"fmt"
	"os"
)

var stopSignals = []os.Signal{os.Interrupt}

// terminate stops a daemon. Windows has no SIGTERM to send to a console
// process that is not in our console group, so it is killed.
func terminate(p *os.Process) error { return p.Kill() }

// privateAddr is the started daemon's address: a pipe named for this run.
func privateAddr(string) string {
	return fmt.Sprintf("npipe:////./pipe/brokerbench-%d", os.Getpid())
}
