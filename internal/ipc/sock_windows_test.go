package ipc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/windows"
)

func testPipeAddr() string {
	return fmt.Sprintf("npipe:////./pipe/portbroker-test-%d-%d", os.Getpid(), time.Now().UnixNano())
}

func TestListenPipeInUse(t *testing.T) {
	addr := testPipeAddr()
	listen(t, addr)
	ln, err := Listen(addr)
	if err == nil {
		ln.Close()
		t.Fatal("second Listen on a served pipe succeeded")
	}
	if !errors.Is(err, ErrAddrInUse) || !strings.Contains(err.Error(), addr) {
		t.Errorf("second Listen error = %q; want ErrAddrInUse naming %s", err, addr)
	}
}

func TestListenPipeRoundTrip(t *testing.T) {
	if os.Getenv("PORTBROKER_UNDER_WINE") != "" {
		t.Skip("Wine does not implement go-winio's pipe Accept")
	}
	addr := testPipeAddr()
	roundTrip(t, listen(t, addr), addr)
}

func TestUnixUnsupported(t *testing.T) {
	if _, err := Listen("unix:///x.sock"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Listen(unix) error = %v; want ErrUnsupported", err)
	}
	if _, err := Dial(context.Background(), "unix:///x.sock"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Dial(unix) error = %v; want ErrUnsupported", err)
	}
}

func underWine() bool { return os.Getenv("PORTBROKER_UNDER_WINE") != "" }

// fileAllAccess is what GENERIC_ALL maps to for files and pipes.
const fileAllAccess = windows.STANDARD_RIGHTS_ALL | 0x1ff

// pipeSecurity returns the owner and DACL of the pipe ln serves at addr,
// as a client sees them.
func pipeSecurity(t *testing.T, ln net.Listener, addr string) *windows.SECURITY_DESCRIPTOR {
	t.Helper()
	const info = windows.OWNER_SECURITY_INFORMATION | windows.DACL_SECURITY_INFORMATION
	_, path, err := ParseAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	if underWine() {
		// Wine cannot Accept on winio's pipes but opens one by name with
		// no instance listening, which Windows refuses (ERROR_PIPE_BUSY).
		sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, info)
		if err != nil {
			t.Fatalf("security of %s: %v", path, err)
		}
		return sd
	}
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	c, err := Dial(dialContext(t), addr)
	if err != nil {
		t.Fatalf("Dial(%s): %v", addr, err)
	}
	defer func() {
		c.Close()
		if err := <-accepted; err != nil {
			t.Errorf("Accept: %v", err)
		}
	}()
	sd, err := windows.GetSecurityInfo(windows.Handle(c.(interface{ Fd() uintptr }).Fd()), windows.SE_KERNEL_OBJECT, info)
	if err != nil {
		t.Fatalf("security of %s: %v", path, err)
	}
	return sd
}

// allowed returns the DACL's allow entries, SID to mask, generic rights
// mapped as for files.
func allowed(t *testing.T, sd *windows.SECURITY_DESCRIPTOR) map[string]uint32 {
	t.Helper()
	dacl, _, err := sd.DACL()
	if err != nil || dacl == nil {
		t.Fatalf("DACL of %s: %v", sd, err)
	}
	got := make(map[string]uint32)
	for i := range uint32(dacl.AceCount) {
		var ace *windows.ACCESS_ALLOWED_ACE
		if err := windows.GetAce(dacl, i, &ace); err != nil {
			t.Fatalf("ACE %d of %s: %v", i, sd, err)
		}
		if ace.Header.AceType != windows.ACCESS_ALLOWED_ACE_TYPE {
			t.Errorf("ACE %d of %s has type %d; want allow entries only", i, sd, ace.Header.AceType)
			continue
		}
		mask := uint32(ace.Mask)
		for generic, specific := range map[uint32]uint32{
			windows.GENERIC_ALL:   fileAllAccess,
			windows.GENERIC_READ:  windows.FILE_GENERIC_READ,
			windows.GENERIC_WRITE: windows.FILE_GENERIC_WRITE,
		} {
			if mask&generic != 0 {
				mask = mask&^generic | specific
			}
		}
		sid := (*windows.SID)(unsafe.Pointer(&ace.SidStart))
		got[sid.String()] |= mask
	}
	return got
}

func TestListenPipeSecurity(t *testing.T) {
	user, err := currentUserSID()
	if err != nil {
		t.Fatal(err)
	}
	elevated := windows.GetCurrentProcessToken().IsElevated()
	tests := []struct {
		name  string
		sddl  string
		owner string
		want  map[string]uint32
	}{
		{"per-user", pipeSDDL(`\\.\pipe\portbroker-x`, user), user, map[string]uint32{user: fileAllAccess}},
		{"service", pipeSDDL(servicePipe, user), sidAdmins, map[string]uint32{
			sidSystem: fileAllAccess,
			sidAdmins: fileAllAccess,
			"S-1-5-4": windows.FILE_GENERIC_READ | windows.FILE_WRITE_DATA, // INTERACTIVE
			"S-1-5-2": windows.FILE_GENERIC_READ | windows.FILE_WRITE_DATA, // NETWORK (SSH)
			"S-1-5-3": windows.FILE_GENERIC_READ | windows.FILE_WRITE_DATA, // BATCH
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := testPipeAddr()
			_, path, _ := ParseAddr(addr)
			ln, err := listenPipeSDDL(addr, path, tt.sddl)
			if tt.owner == sidAdmins && !elevated {
				if underWine() {
					t.Skip("Wine lets an unelevated process make Administrators a pipe's owner")
				}
				// Windows refuses Administrators as owner for an unelevated
				// process: only the service or an administrator may serve.
				if err == nil {
					ln.Close()
					t.Fatal("an unelevated process created a pipe owned by Administrators")
				}
				if !errors.Is(err, windows.ERROR_INVALID_OWNER) || !strings.Contains(err.Error(), "elevated administrator") {
					t.Errorf("listen unelevated = %v; want ERROR_INVALID_OWNER naming the elevated administrator", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("listen with %s: %v", tt.sddl, err)
			}
			t.Cleanup(func() { ln.Close() })
			sd := pipeSecurity(t, ln, addr)
			if owner, _, err := sd.Owner(); err != nil || owner.String() != tt.owner {
				t.Errorf("owner of %s = %v, %v; want %s", sd, owner, err, tt.owner)
			}
			if ctl, _, err := sd.Control(); err != nil || ctl&windows.SE_DACL_PROTECTED == 0 {
				t.Errorf("DACL of %s is not protected (%v); want no inherited entries", sd, err)
			}
			if diff := cmp.Diff(tt.want, allowed(t, sd)); diff != "" {
				t.Errorf("allow entries of %s (-want +got):\n%s", sd, diff)
			}
		})
	}
}

// The service address itself gets the service's descriptor.
func TestListenServiceAddr(t *testing.T) {
	ln, err := Listen(ServiceAddr)
	switch {
	case errors.Is(err, ErrAddrInUse):
		t.Skipf("the portbrokerd service already serves %s here", ServiceAddr)
	case !windows.GetCurrentProcessToken().IsElevated():
		if underWine() {
			t.Skip("Wine lets an unelevated process make Administrators a pipe's owner")
		}
		if err == nil {
			ln.Close()
			t.Fatalf("an unelevated process serves %s", ServiceAddr)
		}
		if !strings.Contains(err.Error(), "elevated administrator") {
			t.Errorf("Listen(%s) unelevated = %v; want a refusal naming the elevated administrator", ServiceAddr, err)
		}
		return
	case err != nil:
		t.Fatalf("Listen(%s): %v", ServiceAddr, err)
	}
	t.Cleanup(func() { ln.Close() })
	sd := pipeSecurity(t, ln, ServiceAddr)
	if owner, _, err := sd.Owner(); err != nil || owner.String() != sidAdmins {
		t.Errorf("owner of %s = %v, %v; want Administrators", sd, owner, err)
	}
	for _, sid := range []string{"S-1-5-4", "S-1-5-2", "S-1-5-3"} {
		if got := allowed(t, sd)[sid]; got != windows.FILE_GENERIC_READ|windows.FILE_WRITE_DATA {
			t.Errorf("%s gets %#x on %s; want read and write data", sid, got, sd)
		}
	}
}

// The service pipe's descriptor, as Windows parses it: interactive, network
// (SSH) and batch logons may read and write data, and nothing more; only
// SYSTEM and Administrators get all. Unlike TestListenServiceAddr, this
// needs no elevation, so it runs under Wine too.
func TestServicePipeGrants(t *testing.T) {
	sd, err := windows.SecurityDescriptorFromString(pipeSDDL(servicePipe, "S-1-5-21-1-2-3-1001"))
	if err != nil {
		t.Fatal(err)
	}
	const data = windows.FILE_GENERIC_READ | windows.FILE_WRITE_DATA
	want := map[string]uint32{
		sidSystem: fileAllAccess,
		sidAdmins: fileAllAccess,
		"S-1-5-4": data, // INTERACTIVE
		"S-1-5-2": data, // NETWORK: SSH and WinRM sessions
		"S-1-5-3": data, // BATCH: scheduled tasks
	}
	if diff := cmp.Diff(want, allowed(t, sd)); diff != "" {
		t.Errorf("allow entries of %s (-want +got):\n%s", sd, diff)
	}
	for sid, mask := range allowed(t, sd) {
		if sid != sidSystem && sid != sidAdmins && mask&windows.FILE_APPEND_DATA != 0 {
			t.Errorf("%s may create pipe instances (FILE_APPEND_DATA) on the service pipe", sid)
		}
	}
}

// rawPipe creates a pipe at path with sddl by CreateNamedPipe: a client
// may open it without an Accept, which Wine lacks for winio's pipes.
func rawPipe(t *testing.T, path, sddl string) {
	t.Helper()
	sd, err := windows.SecurityDescriptorFromString(sddl)
	if err != nil {
		t.Fatal(err)
	}
	sa := &windows.SecurityAttributes{SecurityDescriptor: sd}
	sa.Length = uint32(unsafe.Sizeof(*sa))
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := windows.CreateNamedPipe(p, windows.PIPE_ACCESS_DUPLEX|windows.FILE_FLAG_FIRST_PIPE_INSTANCE,
		windows.PIPE_TYPE_BYTE|windows.PIPE_REJECT_REMOTE_CLIENTS, 1, 4096, 4096, 0, sa)
	if err != nil {
		t.Fatalf("create pipe %s: %v", path, err)
	}
	t.Cleanup(func() { windows.CloseHandle(h) })
}

func testPipePath() (addr, path string) {
	addr = testPipeAddr()
	_, path, _ = ParseAddr(addr)
	return addr, path
}

func TestDialChecksPipeOwner(t *testing.T) {
	user, err := currentUserSID()
	if err != nil {
		t.Fatal(err)
	}
	addr, path := testPipePath()
	rawPipe(t, path, pipeSDDL(path, user))
	c, err := Dial(dialContext(t), addr)
	if err != nil {
		t.Fatalf("Dial(%s) of the user's own pipe: %v", addr, err)
	}
	defer c.Close()
	if err := checkPipeServer(c, path, user); err != nil {
		t.Errorf("checkPipeServer as its owner: %v", err)
	}
	// The same pipe, as seen by another user: its owner is a stranger.
	const other = "S-1-5-21-1-2-3-1002"
	err = checkPipeServer(c, path, other)
	if err == nil {
		t.Fatalf("checkPipeServer as %s accepted a pipe owned by %s", other, user)
	}
	for _, want := range []string{path, "owned by " + user, fmt.Sprintf("server pid %d", os.Getpid()), "refusing"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("checkPipeServer as %s = %q; want it to name %q", other, err, want)
		}
	}
}

// Wine lets a process name any owner, so there a stranger's pipe can be
// made and dialed for real.
func TestDialRefusesStrangersPipe(t *testing.T) {
	if !underWine() {
		t.Skip("Windows lets only a privileged process make a pipe owned by another user; checkPipeServer's refusal is tested in TestDialChecksPipeOwner")
	}
	const other = "S-1-5-21-1-2-3-1002"
	addr, path := testPipePath()
	rawPipe(t, path, "O:"+other+"D:P(A;;GA;;;WD)")
	c, err := Dial(dialContext(t), addr)
	if err == nil {
		c.Close()
		t.Fatalf("Dial(%s) of a pipe owned by %s succeeded", addr, other)
	}
	if !strings.Contains(err.Error(), "owned by "+other) {
		t.Errorf("Dial(%s) = %v; want a refusal naming the owner", addr, err)
	}
}

// dialContext bounds a dial that would otherwise retry a busy pipe for
// ever.
func dialContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestDialPipeFallback(t *testing.T) {
	user, err := currentUserSID()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		pathServed  bool
		alt         bool // whether there is a fallback
		altServed   bool
		wantReached string // "path", "alt" or "" for an error
	}{
		{"own pipe", true, true, true, "path"},
		{"own pipe missing", false, true, true, "alt"},
		{"no fallback", false, false, false, ""},
		{"both missing", false, true, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, path := testPipePath()
			if tt.pathServed {
				rawPipe(t, path, pipeSDDL(path, user))
			}
			var alt string
			if tt.alt {
				_, alt = testPipePath()
			}
			if tt.altServed {
				rawPipe(t, alt, pipeSDDL(alt, user))
			}
			c, err := dialPipeOr(dialContext(t), path, alt)
			if tt.wantReached == "" {
				if err == nil {
					c.Close()
					t.Fatalf("dialPipeOr(%s, %q) succeeded; want an error", path, alt)
				}
				if !errors.Is(err, windows.ERROR_FILE_NOT_FOUND) || !strings.Contains(err.Error(), path) {
					t.Errorf("dialPipeOr(%s, %q) = %v; want ERROR_FILE_NOT_FOUND naming %s", path, alt, err, path)
				}
				if tt.alt && !strings.Contains(err.Error(), formatAddr(NetworkPipe, alt)) {
					t.Errorf("dialPipeOr(%s, %q) = %v; want it to name the fallback too", path, alt, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("dialPipeOr(%s, %q): %v", path, alt, err)
			}
			defer c.Close()
			want := map[string]string{"path": path, "alt": alt}[tt.wantReached]
			if got := c.RemoteAddr().String(); got != want {
				t.Errorf("dialPipeOr(%s, %q) reached %s, want %s", path, alt, got, want)
			}
		})
	}
}

// Dial of the user's default address reaches the service pipe when the
// user's own pipe does not exist.
func TestDialDefaultReachesService(t *testing.T) {
	def, err := DefaultAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, defPath, _ := ParseAddr(def)
	if _, err := os.Stat(defPath); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Skipf("a per-user portbrokerd serves %s here (stat: %v)", def, err)
	}
	if _, err := os.Stat(servicePipe); !errors.Is(err, os.ErrNotExist) {
		t.Skipf("the portbrokerd service serves %s here (stat: %v)", ServiceAddr, err)
	}
	if !windows.GetCurrentProcessToken().IsElevated() {
		t.Skip("only an elevated administrator may create the service pipe, owned by Administrators")
	}
	rawPipe(t, servicePipe, pipeSDDL(servicePipe, ""))
	c, err := Dial(dialContext(t), def)
	if err != nil {
		t.Fatalf("Dial(%s) with only the service pipe served: %v", def, err)
	}
	defer c.Close()
	if got := c.RemoteAddr().String(); got != servicePipe {
		t.Errorf("Dial(%s) reached %s, want %s", def, got, servicePipe)
	}
}
