//go:build !windows

package ipc

// serviceStateDirOf returns "": only Windows runs portbrokerd as a
// machine-wide service.
func serviceStateDirOf(string) string { return "" }
