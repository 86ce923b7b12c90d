//go:build unix && !linux

package main

// setProcessName does nothing where a process cannot rename itself; the
// lease then records brokerctl's name until the daemon looks again.
func setProcessName(string) {}
