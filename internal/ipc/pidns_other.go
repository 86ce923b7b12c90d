//go:build !linux

package ipc

import "errors"

// ErrPIDNotInNamespace matches a TranslatePID error for a PID that names
// no process in the caller's PID namespace; only Linux has them.
var ErrPIDNotInNamespace = errors.New("no such process in the caller's PID namespace")

// TranslatePID returns pid: this OS has no PID namespaces.
func TranslatePID(_ Identity, pid int) (int, error) { return pid, nil }

func pidNamespace(int) string { return "" }
