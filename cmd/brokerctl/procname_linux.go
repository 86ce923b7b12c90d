package main

import "os"

// setProcessName names this process for the command it is about to become,
// so that the lease records the service's name rather than brokerctl's.
// Linux keeps 15 bytes of it; a failure only costs the nicer name.
func setProcessName(name string) {
	if len(name) > 15 {
		name = name[:15]
	}
	_ = os.WriteFile("/proc/self/comm", []byte(name), 0)
}
