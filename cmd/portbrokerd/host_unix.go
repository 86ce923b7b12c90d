//go:build unix

package main

import (
	"github.com/portbroker/portbroker/internal/daemon"
	"github.com/portbroker/portbroker/platform/unix"
)

func newHost() daemon.Host { return unix.New() }

// protectedNames are never stopped, whoever asks.
var protectedNames = unix.ProtectedNames
