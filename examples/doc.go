// Package examples holds runnable examples of portbroker in use (see
// README.md): a Python dev-stack launcher, a Go service that leases its own
// port, and a portbroker.yaml. Its tests run them against a real daemon.
package examples
