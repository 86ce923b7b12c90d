package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/portbroker/portbroker/client"
)

// A thread id is not a process: the daemon refuses it as owner_pid, naming
// the process it belongs to, rather than lease to an owner it cannot watch.
func TestThreadIDAsOwnerIsRefused(t *testing.T) {
	_, c := realDaemon(t)
	// Any of this process's threads but the main one: the Go runtime
	// keeps several for the life of the process.
	tid := 0
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if id, err := strconv.Atoi(task.Name()); err == nil && id != os.Getpid() {
			tid = id
			break
		}
	}
	if tid == 0 {
		t.Fatal("no thread but the main one")
	}
	_, err = c.Acquire(t.Context(), "threaded", client.WithOwnerPID(tid))
	if !errors.Is(err, client.ErrInvalidArgument) || !strings.Contains(err.Error(), "owner_pid") ||
		!strings.Contains(err.Error(), fmt.Sprintf("thread of process %d", os.Getpid())) {
		t.Fatalf("Acquire with thread %d as owner = %v; want InvalidArgument naming owner_pid and process %d", tid, err, os.Getpid())
	}
	if l := leaseNamed(t, c, "threaded"); l != nil {
		t.Errorf("lease %s granted to a thread", l.ID)
	}
}
