package ipc

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/windows"
)

// The service files' descriptor, as Windows parses it: SYSTEM and
// Administrators get all, the users the service pipe admits read, and
// those are exactly the pipe's users.
func TestServiceFileGrants(t *testing.T) {
	sd, err := windows.SecurityDescriptorFromString(serviceFileSDDL())
	if err != nil {
		t.Fatal(err)
	}
	control, _, err := sd.Control()
	if err != nil || control&windows.SE_DACL_PROTECTED == 0 {
		t.Errorf("control of %s = %#x, %v; want SE_DACL_PROTECTED", sd, control, err)
	}
	pipe, err := windows.SecurityDescriptorFromString(pipeSDDL(servicePipe, "S-1-5-21-1-2-3-1001"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint32{sidSystem: fileAllAccess, sidAdmins: fileAllAccess}
	for sid := range allowed(t, pipe) {
		if sid != sidSystem && sid != sidAdmins {
			want[sid] = windows.FILE_GENERIC_READ
		}
	}
	if diff := cmp.Diff(want, allowed(t, sd)); diff != "" {
		t.Errorf("allow entries of %s (-want +got):\n%s", sd, diff)
	}
}

// serviceEnv points the service state dir and the user's own state dir at
// new directories and clears every other way a client finds a token or
// certificate; it returns the service state dir, created.
func serviceEnv(t *testing.T) string {
	t.Helper()
	noClientToken(t)
	t.Setenv(EnvStateDir, "")
	t.Setenv("ProgramData", t.TempDir())
	t.Setenv("LOCALAPPDATA", t.TempDir())
	dir, err := ServiceStateDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A client dialing the address the service recorded finds the service's
// token and certificate in its state dir, with no setting, and calls it;
// for any other address it looks in the user's own state dir.
func TestServiceTCPClientFindsTokenAndCert(t *testing.T) {
	dir := serviceEnv(t)
	ln, addr := listenTCP(t)
	token, tokenPath, err := RotateServiceToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := NewServiceCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteServiceAddr(dir, addr); err != nil {
		t.Fatal(err)
	}
	serve(t, ln, token, tokenPath, WithTLS(cert))

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if unaryErr, streamErr := callBroker(ctx, dialTest(t, addr)); unaryErr != nil || streamErr != nil {
		t.Fatalf("calls to the service at %s: %v, %v; want them to succeed with its token and certificate", addr, unaryErr, streamErr)
	}

	// Recorded another address: the client looks in its own state dir,
	// which holds neither, and sends nothing.
	if _, err := WriteServiceAddr(dir, "tcp://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	if got, err := clientStateDir(addr); err != nil || got != filepath.Join(os.Getenv("LOCALAPPDATA"), "portbroker") {
		t.Errorf("clientStateDir(%s) with another address recorded = %q, %v; want the user's own", addr, got, err)
	}
	if unaryErr, _ := callBroker(ctx, dialTest(t, addr)); unaryErr == nil {
		t.Errorf("a call to %s succeeded though the service recorded another address", addr)
	}
}

// The service's files carry the descriptor they were created with, where
// the file system keeps it (Wine keeps none it enforces; it may return
// another).
func TestServiceFilesDescriptor(t *testing.T) {
	dir := serviceEnv(t)
	_, tokenPath, err := RotateServiceToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, certPath, err := NewServiceCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	addrPath, err := WriteServiceAddr(dir, "tcp://127.0.0.1:7000")
	if err != nil {
		t.Fatal(err)
	}
	want, err := windows.SecurityDescriptorFromString(serviceFileSDDL())
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{tokenPath, certPath, addrPath} {
		sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION)
		if err != nil {
			t.Fatalf("security of %s: %v", path, err)
		}
		if diff := cmp.Diff(allowed(t, want), allowed(t, sd)); diff != "" {
			if underWine() {
				t.Logf("Wine gives %s another DACL (-want +got):\n%s", path, diff)
				continue
			}
			t.Errorf("allow entries of %s (-want +got):\n%s", path, diff)
		}
	}
}

// A record another user owns is ignored: anyone may create the service
// state dir before the service does. Setting a file's owner to another
// user takes a privilege (SeRestorePrivilege) and a file system that keeps
// it; where either is missing, as under Wine, the test skips.
func TestServiceRecordOfAnotherUserIgnored(t *testing.T) {
	dir := serviceEnv(t)
	const addr = "tcp://127.0.0.1:7000"
	path, err := WriteServiceAddr(dir, addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := ServiceTCPAddr(); got != addr {
		t.Fatalf("ServiceTCPAddr() = %q with the caller's own record; want %q", got, addr)
	}
	other, err := windows.StringToSid("S-1-5-21-1-2-3-1002")
	if err != nil {
		t.Fatal(err)
	}
	if err := windows.SetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, windows.OWNER_SECURITY_INFORMATION, other, nil, nil, nil); err != nil {
		t.Skipf("cannot give %s another owner: %v", path, err)
	}
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, windows.OWNER_SECURITY_INFORMATION)
	if err != nil {
		t.Fatal(err)
	}
	if owner, _, err := sd.Owner(); err != nil || owner == nil || !owner.Equals(other) {
		t.Skipf("the file system did not keep the owner set on %s (got %v, %v)", path, owner, err)
	}
	if got := ServiceTCPAddr(); got != "" {
		t.Errorf("ServiceTCPAddr() = %q from a record owned by another user; want none", got)
	}
	if got := serviceStateDirOf(addr); got != "" {
		t.Errorf("serviceStateDirOf(%s) = %q from a record owned by another user; want none", addr, got)
	}
}
