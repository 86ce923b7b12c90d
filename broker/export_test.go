package broker

// Test-only access for the external contract test of the fake watcher.

// FakeProcs is the fake process table, for external tests.
type FakeProcs = fakeProcs

func NewFakeProcsForTest() *FakeProcs { return newFakeProcs() }

func NewFakeWatcherForTest(procs *FakeProcs) ExitWatcher { return newFakeWatcher(procs) }

// SpawnForTest starts a fake process with a PID not used before and returns
// it with the function that ends it.
func SpawnForTest(procs *FakeProcs) (Process, func()) {
	procs.mu.Lock()
	procs.next++
	pid := 10000 + procs.next
	procs.mu.Unlock()
	p := procs.spawn(pid)
	return p, func() { procs.kill(pid) }
}
