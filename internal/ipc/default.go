package ipc

import (
	"fmt"
	"strings"
)

// DefaultAddr returns the per-user address the daemon listens on and
// clients dial when no address is configured:
//
//	Linux and other Unix: unix://$XDG_RUNTIME_DIR/portbroker/portbroker.sock,
//	                      else unix://<temp dir>/portbroker-<uid>/portbroker.sock
//	macOS:                unix://$TMPDIR/portbroker-<uid>/portbroker.sock
//	Windows:              npipe:////./pipe/portbroker-<user name>
//
// On Windows, Dial of that address reaches the machine-wide service at
// ServiceAddr when the user's own pipe does not exist.
//
// PORTBROKER_ADDR is for callers to resolve; DefaultAddr ignores it.
func DefaultAddr() (string, error) { return defaultAddr() }

// DefaultStateDir returns the per-user directory that holds the daemon's
// state when none is configured:
//
//	Linux and other Unix: $XDG_STATE_HOME/portbroker, else ~/.local/state/portbroker
//	macOS:                ~/Library/Application Support/portbroker
//	Windows:              %LOCALAPPDATA%\portbroker
func DefaultStateDir() (string, error) { return defaultStateDir() }

// ServiceAddr is the machine-wide address of portbrokerd running as the
// Windows service, whose state lives in ServiceStateDir (Windows only). Listen gives its
// pipe to SYSTEM and Administrators, who alone may serve it, and lets
// interactive users call it; every other pipe is its user's alone. Dial
// trusts a pipe only when it is owned by the calling user, SYSTEM or
// Administrators, so another user cannot pose as either daemon.
const ServiceAddr = "npipe:////./pipe/portbroker"

// servicePipe is ServiceAddr as ParseAddr returns it.
const servicePipe = `\\.\pipe\portbroker`

// Well-known SIDs: a pipe owned by one of them, or by the caller, is
// trusted.
const (
	sidSystem = "S-1-5-18"
	sidAdmins = "S-1-5-32-544"
)

// pipeSDDL is the security descriptor a pipe at path is created with by a
// daemon running as user (a SID). The owner is set explicitly because
// clients judge a pipe by it, and Windows lets a process name only itself
// or a group it may own (Administrators, when elevated) as an object's
// owner.
//
// The service pipe is owned by Administrators, so creating it takes SYSTEM
// or an elevated administrator. Users logged on interactively (IU), over
// the network (NU: SSH and WinRM sessions) or as a batch job (S-1-5-3:
// scheduled tasks) may read and write data but not
// FILE_CREATE_PIPE_INSTANCE (FILE_APPEND_DATA, part of GENERIC_WRITE): with
// it they could add an instance of the service's pipe and answer its
// clients. NU admits no remote client: the pipe rejects remote clients
// (go-winio creates it with PIPE_REJECT_REMOTE_CLIENTS), so only local
// processes of such sessions connect. Service accounts are left out: a
// service that needs ports runs its own daemon. Every other pipe grants
// its user alone.
func pipeSDDL(path, user string) string {
	if strings.EqualFold(path, servicePipe) {
		// 0x12008b: FILE_GENERIC_READ | FILE_WRITE_DATA.
		return "O:BAD:P(A;;GA;;;SY)(A;;GA;;;BA)" + serviceUserACEs("0x12008b")
	}
	return "O:" + user + "D:P(A;;GA;;;" + user + ")"
}

// serviceUsers are the principals the service serves besides SYSTEM and
// Administrators (see pipeSDDL): its pipe and the files its TCP clients
// read (serviceFileSDDL) both grant them from this one list, so the two
// cannot drift apart.
var serviceUsers = []string{"IU", "NU", "S-1-5-3"}

// serviceUserACEs allows each of serviceUsers rights.
func serviceUserACEs(rights string) string {
	var b strings.Builder
	for _, u := range serviceUsers {
		b.WriteString("(A;;" + rights + ";;;" + u + ")")
	}
	return b.String()
}

// serviceFileSDDL is the protected DACL of the files the Windows service
// writes on loopback TCP for its clients (its token, certificate and
// address): SYSTEM and Administrators get full access, the users its pipe
// admits read access (FR: FILE_GENERIC_READ), nobody else any. Protected,
// so the state dir's DACL (SYSTEM and Administrators only) is not
// inherited on top.
func serviceFileSDDL() string {
	return "D:P(A;;FA;;;SY)(A;;FA;;;BA)" + serviceUserACEs("FR")
}

// fallbackPipe returns where Dial goes when the pipe at path does not
// exist: the service pipe when path is the caller's own default pipe
// (userPipe), else nowhere (""). Named pipe names are case-insensitive.
func fallbackPipe(path, userPipe string) string {
	if userPipe != "" && strings.EqualFold(path, userPipe) {
		return servicePipe
	}
	return ""
}

// checkPipeOwner refuses a pipe whose owner is not user, SYSTEM or
// Administrators: another user created it, whatever name it has. serverPID
// is only for the message.
func checkPipeOwner(path, owner, user string, serverPID uint32) error {
	if owner != "" && (owner == user || owner == sidSystem || owner == sidAdmins) {
		return nil
	}
	return fmt.Errorf("pipe %s is owned by %s (server pid %d), not you (%s), SYSTEM or Administrators: another user may be posing as portbrokerd; refusing to dial",
		path, owner, serverPID, user)
}
