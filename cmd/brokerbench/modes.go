package main

import (
	"context"
	"fmt"
	"os"
)

// withDaemon runs f against the daemon cfg names: the live one at
// cfg.addr, else a private one it starts and stops around f.
func withDaemon(ctx context.Context, cfg config, log func(string, ...any), f func(addr string) error) (err error) {
	if cfg.addr != "" {
		return f(cfg.addr)
	}
	spec, err := prepare(cfg)
	if err != nil {
		return err
	}
	defer os.RemoveAll(spec.runDir)
	defer os.RemoveAll(spec.stateDir)
	log("starting %s with state in %s", spec.path, spec.stateDir)
	d, _, err := startDaemon(ctx, spec)
	if err != nil {
		return err
	}
	defer func() {
		serr := d.stop()
		switch {
		case err != nil && serr == nil:
			err = fmt.Errorf("%w%s", err, d.logTail())
		case err != nil:
			err = fmt.Errorf("%w; and stopping the daemon: %v", err, serr)
		default:
			err = serr
		}
	}()
	return f(spec.addr)
}
