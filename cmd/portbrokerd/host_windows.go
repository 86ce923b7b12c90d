package main

import (
	"github.com/portbroker/portbroker/internal/daemon"
	"github.com/portbroker/portbroker/platform/windows"
)

func newHost() daemon.Host { return windows.New() }

// protectedNames are never stopped, whoever asks.
var protectedNames = []string{"System", "smss.exe", "csrss.exe", "wininit.exe", "winlogon.exe", "services.exe", "lsass.exe", "svchost.exe"}
