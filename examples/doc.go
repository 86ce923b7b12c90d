// Package examples holds runnable examples of portbroker in use (see
// README.md): a dev stack for brokerctl up (portbroker.yaml and
// procfile/Procfile), a Go service that leases its own port, and a
// portbrokerd config. Its tests run them against a real daemon.
package examples
