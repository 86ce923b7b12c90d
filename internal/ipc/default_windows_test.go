package ipc

import (
	"strings"
	"testing"
)

func TestDefaultAddr(t *testing.T) {
	got, err := DefaultAddr()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, "npipe:////./pipe/portbroker-") {
		t.Errorf("DefaultAddr() = %q; want npipe:////./pipe/portbroker-<user>", got)
	}
	network, address, err := ParseAddr(got)
	if err != nil || network != NetworkPipe || strings.Count(address, `\`) != 4 {
		t.Errorf("ParseAddr(%q) = %q, %q, %v; want one pipe name without backslashes", got, network, address, err)
	}
}

func TestDefaultStateDir(t *testing.T) {
	t.Setenv("LOCALAPPDATA", `C:\Users\alice\AppData\Local`)
	want := `C:\Users\alice\AppData\Local\portbroker`
	if got, err := DefaultStateDir(); err != nil || got != want {
		t.Errorf("DefaultStateDir() = %q, %v; want %q", got, err, want)
	}
}

func TestServiceStateDir(t *testing.T) {
	tests := []struct {
		programData, want, wantErr string
	}{
		{`C:\ProgramData`, `C:\ProgramData\portbroker`, ""},
		{`D:\Data\`, `D:\Data\portbroker`, ""},
		{"", "", "%ProgramData% is not set"},
		{`ProgramData`, "", "not an absolute path"},
	}
	for _, tt := range tests {
		t.Setenv("ProgramData", tt.programData)
		got, err := ServiceStateDir()
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ServiceStateDir() with %%ProgramData%%=%q = %q, %v; want an error containing %q", tt.programData, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ServiceStateDir() with %%ProgramData%%=%q = %q, %v; want %q", tt.programData, got, err, tt.want)
		}
	}
}
