package main

import (
	"context"
	"fmt"
)

// runAsService runs the daemon under the Windows service manager when it
// started us; it reports false otherwise.
func runAsService(runFunc) (int, bool) { return 0, false }

func serviceCommand(_ context.Context, verb string) error {
	return fmt.Errorf("service %s: the Windows service is not available in this build yet", verb)
}
