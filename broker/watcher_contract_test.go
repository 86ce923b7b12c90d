package broker_test

import (
	"testing"

	"github.com/portbroker/portbroker/broker"
	"github.com/portbroker/portbroker/internal/exitwatchtest"
)

// The broker's fake watcher keeps the contract the real watchers keep.
func TestFakeWatcherContract(t *testing.T) {
	procs := broker.NewFakeProcsForTest()
	exitwatchtest.Run(t, exitwatchtest.Harness{
		New:   func(t *testing.T) broker.ExitWatcher { return broker.NewFakeWatcherForTest(procs) },
		Start: func(t *testing.T) (broker.Process, func()) { return broker.SpawnForTest(procs) },
	})
}
