//go:build !windows

package ipc

// ServiceTCPAddr returns "": only Windows runs portbrokerd as a
// machine-wide service.
func ServiceTCPAddr() string { return "" }

// serviceStateDirOf returns "": only Windows runs portbrokerd as a
// machine-wide service.
func serviceStateDirOf(string) string { return "" }
