package ipc

import (
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/windows"
)

// ServiceTCPAddr returns the loopback TCP address portbrokerd running as
// the Windows service recorded in its ServiceAddrFile, or "" when it
// recorded none (it serves ServiceAddr, or is not installed). Clients try
// it when neither the user's own pipe nor the service pipe exists. A
// record owned by anyone but SYSTEM, Administrators or the caller is
// ignored, as checkPipeOwner refuses such a pipe: any user may create
// %ProgramData%\portbroker before the service does, and with it a record
// and a certificate that would point clients at their own server. A stale
// record is harmless: the client pins the certificate beside it.
func ServiceTCPAddr() string {
	_, addr := recordedServiceAddr()
	return addr
}

// recordedServiceAddr returns ServiceStateDir and the TCP address recorded
// there, or "", "".
func recordedServiceAddr() (dir, addr string) {
	dir, err := ServiceStateDir()
	if err != nil {
		return "", ""
	}
	path := filepath.Join(dir, ServiceAddrFile)
	if !trustedServiceFile(path) {
		return "", ""
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", ""
	}
	addr = strings.TrimSpace(string(data))
	if network, _, err := ParseAddr(addr); err != nil || network != NetworkTCP {
		return "", ""
	}
	return dir, addr
}

// serviceStateDirOf returns ServiceStateDir when the service recorded addr
// in its ServiceAddrFile, else "".
func serviceStateDirOf(addr string) string {
	dir, rec := recordedServiceAddr()
	if rec == "" || !sameAddr(rec, addr) {
		return ""
	}
	return dir
}

// trustedServiceFile reports whether path is owned by SYSTEM,
// Administrators or the calling user.
func trustedServiceFile(path string) bool {
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, windows.OWNER_SECURITY_INFORMATION)
	if err != nil {
		return false
	}
	owner, _, err := sd.Owner()
	if err != nil || owner == nil {
		return false
	}
	user, err := currentUserSID()
	return err == nil && checkPipeOwner(path, owner.String(), user, 0) == nil
}

// sameAddr reports whether a and b name the same broker address.
func sameAddr(a, b string) bool {
	na, aa, err := ParseAddr(a)
	if err != nil {
		return false
	}
	nb, ab, err := ParseAddr(b)
	return err == nil && na == nb && aa == ab
}
