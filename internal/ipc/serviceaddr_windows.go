package ipc

import (
	"os"
	"path/filepath"
	"strings"
)

// serviceStateDirOf returns ServiceStateDir when the service recorded addr
// in its ServiceAddrFile, else "". The file is written by the service
// alone: the service state dir is SYSTEM's and Administrators' (the
// service makes it so before it starts).
func serviceStateDirOf(addr string) string {
	dir, err := ServiceStateDir()
	if err != nil {
		return ""
	}
	data, err := os.ReadFile(filepath.Join(dir, ServiceAddrFile))
	if err != nil || !sameAddr(strings.TrimSpace(string(data)), addr) {
		return ""
	}
	return dir
}
