package ipc

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestServiceAddrParses(t *testing.T) {
	network, path, err := ParseAddr(ServiceAddr)
	if err != nil || network != NetworkPipe || path != servicePipe {
		t.Errorf("ParseAddr(ServiceAddr) = %q, %q, %v; want %q, %q", network, path, err, NetworkPipe, servicePipe)
	}
}

func TestPipeSDDL(t *testing.T) {
	const user = "S-1-5-21-1-2-3-1001"
	service := "O:BAD:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;0x12008b;;;IU)(A;;0x12008b;;;NU)(A;;0x12008b;;;S-1-5-3)"
	private := "O:" + user + "D:P(A;;GA;;;" + user + ")"
	tests := []struct {
		path, want string
	}{
		{servicePipe, service},
		{`\\.\PIPE\PortBroker`, service}, // pipe names ignore case
		{`\\.\pipe\portbroker-alice`, private},
		{`\\.\pipe\portbroker\x`, private},
		{`\\.\pipe\my-broker`, private},
	}
	for _, tt := range tests {
		if got := pipeSDDL(tt.path, user); got != tt.want {
			t.Errorf("pipeSDDL(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

// Users of the service pipe must not get FILE_CREATE_PIPE_INSTANCE
// (FILE_APPEND_DATA, 0x4), nor anything generic that includes it.
func TestServicePipeSDDLDeniesUsersNewInstances(t *testing.T) {
	sddl := pipeSDDL(servicePipe, "S-1-5-21-1-2-3-1001")
	aces := regexp.MustCompile(`\(A;;([^;]+);;;([^)]+)\)`).FindAllStringSubmatch(sddl, -1)
	if len(aces) == 0 {
		t.Fatalf("no allow entries in %s", sddl)
	}
	for _, ace := range aces {
		rights, sid := ace[1], ace[2]
		if sid == "SY" || sid == "BA" {
			continue
		}
		if strings.Contains(rights, "G") { // GA, GW, GR, ...: generic, may include append
			t.Errorf("%s is granted generic rights %s; want specific ones", sid, rights)
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimPrefix(rights, "0x"), 16, 32)
		if err != nil {
			t.Fatalf("%s rights %q: %v", sid, rights, err)
		}
		const readData, writeData, createInstance = 0x1, 0x2, 0x4
		if mask&createInstance != 0 || mask&(readData|writeData) != readData|writeData {
			t.Errorf("%s is granted %#x; want read and write data, never create-instance (0x4)", sid, mask)
		}
	}
}

func TestFallbackPipe(t *testing.T) {
	const userPipe = `\\.\pipe\portbroker-alice`
	tests := []struct {
		path, userPipe, want string
	}{
		{userPipe, userPipe, servicePipe},
		{`\\.\PIPE\Portbroker-Alice`, userPipe, servicePipe},
		{`\\.\pipe\portbroker-bob`, userPipe, ""}, // an address the user chose
		{servicePipe, userPipe, ""},
		{userPipe, "", ""}, // no default known
	}
	for _, tt := range tests {
		if got := fallbackPipe(tt.path, tt.userPipe); got != tt.want {
			t.Errorf("fallbackPipe(%q, %q) = %q, want %q", tt.path, tt.userPipe, got, tt.want)
		}
	}
}

func TestCheckPipeOwner(t *testing.T) {
	const (
		alice = "S-1-5-21-1-2-3-1001"
		bob   = "S-1-5-21-1-2-3-1002"
	)
	tests := []struct {
		owner, user string
		ok          bool
	}{
		{alice, alice, true},
		{sidSystem, alice, true},
		{sidAdmins, alice, true},
		{bob, alice, false},
		{"S-1-5-32-545", alice, false}, // Users: any user's group
		{"", "", false},
		{"", alice, false},
	}
	for _, tt := range tests {
		err := checkPipeOwner(servicePipe, tt.owner, tt.user, 4242)
		if tt.ok {
			if err != nil {
				t.Errorf("checkPipeOwner(owner %q, user %q) = %v; want nil", tt.owner, tt.user, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("checkPipeOwner(owner %q, user %q) = nil; want a refusal", tt.owner, tt.user)
			continue
		}
		for _, want := range []string{servicePipe, "pid 4242", "refusing"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("checkPipeOwner(owner %q, user %q) = %q; want it to name %q", tt.owner, tt.user, err, want)
			}
		}
	}
}

// sddlACEs parses the DACL of an SDDL string made of allow entries
// without flags into trustee -> rights, failing on anything else.
func sddlACEs(t *testing.T, sddl string) (protected bool, aces map[string]string) {
	t.Helper()
	_, dacl, ok := strings.Cut(sddl, "D:")
	if !ok {
		t.Fatalf("%s has no DACL", sddl)
	}
	protected = strings.HasPrefix(dacl, "P(")
	dacl = strings.TrimPrefix(dacl, "P")
	aces = make(map[string]string)
	re := regexp.MustCompile(`^\(A;;([^;()]+);;;([^;()]+)\)`)
	for dacl != "" {
		m := re.FindStringSubmatch(dacl)
		if m == nil {
			t.Fatalf("%s: unexpected entry at %q", sddl, dacl)
		}
		if _, dup := aces[m[2]]; dup {
			t.Fatalf("%s: %s named twice", sddl, m[2])
		}
		aces[m[2]] = m[1]
		dacl = dacl[len(m[0]):]
	}
	return protected, aces
}

// The files the service writes for its TCP clients are protected, give
// SYSTEM and Administrators full access and read access to exactly the
// principals its pipe admits besides them.
func TestServiceFileSDDL(t *testing.T) {
	sddl := serviceFileSDDL()
	if strings.Contains(sddl, "O:") || strings.Contains(sddl, "G:") {
		t.Errorf("serviceFileSDDL() = %s names an owner or group; the creator owns it", sddl)
	}
	protected, file := sddlACEs(t, sddl)
	if !protected || !strings.HasPrefix(sddl, "D:P(") {
		t.Errorf("serviceFileSDDL() = %s is not protected (D:P): the state dir's entries would be inherited", sddl)
	}
	_, pipe := sddlACEs(t, pipeSDDL(servicePipe, "S-1-5-21-1-2-3-1001"))
	want := map[string]string{"SY": "FA", "BA": "FA"}
	for who := range pipe {
		if who != "SY" && who != "BA" {
			want[who] = "FR"
		}
	}
	if len(want) < 3 {
		t.Fatalf("the service pipe %v admits no users besides SYSTEM and Administrators", pipe)
	}
	if len(file) != len(want) {
		t.Errorf("serviceFileSDDL() grants %v; want %v", file, want)
	}
	for who, rights := range want {
		if file[who] != rights {
			t.Errorf("serviceFileSDDL() grants %s %q; want %q (all: %v)", who, file[who], rights, file)
		}
	}
}
