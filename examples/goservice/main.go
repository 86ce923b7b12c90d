// Command goservice is a small HTTP service that takes its port from
// portbrokerd: client.Listen leases a port and binds it in one step, and
// closing the listener (here, on shutdown) releases the lease.
//
//	go run ./examples/goservice -name api -port 8000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/portbroker/portbroker/client"
)

func main() {
	name := flag.String("name", "goservice", "lease name")
	port := flag.Int("port", 0, "preferred port (default: the configured or last port of -name, else any)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *name, *port); err != nil {
		log.Fatalf("goservice: %v", err)
	}
}

func run(ctx context.Context, name string, port int) error {
	// Starts portbrokerd when none runs at the default address.
	c, err := client.New(ctx, client.WithAutoStart(true))
	if err != nil {
		return err
	}
	defer c.Close()

	var opts []client.AcquireOption
	if port != 0 {
		opts = append(opts, client.WithPort(port))
	}
	ln, err := c.Listen(ctx, name, opts...)
	if err != nil {
		return err
	}
	lease := ln.(*client.Listener).Lease()
	if lease.FallbackReason != "" {
		log.Printf("goservice: port %d is busy (%s); using %d", port, lease.FallbackReason, lease.Port)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s on port %d\n", name, lease.Port)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Printf("%s serving on http://localhost:%d/\n", name, lease.Port)

	select {
	case err := <-served:
		ln.Close()
		return err
	case <-ctx.Done():
	}
	// Shutdown closes the listener, which releases the lease.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
