package ipc

import (
	"fmt"
	"os"
	"path/filepath"
)

// ServiceAddrFile is the file in the Windows service's state dir that
// records the loopback TCP address the service serves, for its users'
// clients: dialing that address, they read its token and certificate from
// the service's state dir, not their own.
const ServiceAddrFile = "service.addr"

// WriteServiceAddr records addr, the TCP address portbrokerd running as the
// Windows service serves, in ServiceAddrFile in stateDir, readable by the
// users its pipe admits (serviceFileSDDL). Elsewhere it fails.
func WriteServiceAddr(stateDir, addr string) (path string, err error) {
	path = filepath.Join(stateDir, ServiceAddrFile)
	if err := replaceFile(path, []byte(addr+"\n"), 0o644, createServiceTemp); err != nil {
		return path, fmt.Errorf("record the service address: %w", err)
	}
	return path, nil
}

// clientStateDir is where a client of addr finds the daemon's token and
// certificate: $PORTBROKER_STATE_DIR, else the Windows service's state dir
// when the service recorded addr there (serviceStateDirOf), else
// DefaultStateDir.
func clientStateDir(addr string) (string, error) {
	if dir := os.Getenv(EnvStateDir); dir != "" {
		return dir, nil
	}
	if dir := serviceStateDirOf(addr); dir != "" {
		return dir, nil
	}
	return DefaultStateDir()
}
