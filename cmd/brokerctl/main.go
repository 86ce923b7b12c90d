// Command brokerctl inspects and drives portbrokerd, the per-host port
// broker.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// brokerctl run starts its children through brokerctl itself.
	if code, ok := runAsShim(os.Args[1:]); ok {
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
