package main

import (
	"github.com/portbroker/portbroker/internal/daemon"
	"github.com/portbroker/portbroker/platform/windows"
)

func newHost() daemon.Host { return windows.New() }
