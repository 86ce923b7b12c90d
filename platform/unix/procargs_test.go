//go:build unix

package unix

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"
)

// procArgs builds a kern.procargs2 buffer.
func procArgs(argc uint32, rest string) []byte {
	return append(binary.NativeEndian.AppendUint32(nil, argc), rest...)
}

func TestParseProcArgs(t *testing.T) {
	tests := []struct {
		name     string
		in       []byte
		wantExe  string
		wantArgs []string
		wantErr  string
	}{
		{"typical", procArgs(2, "/usr/bin/python3\x00\x00\x00\x00python3\x00-m\x00HOME=/x\x00"), "/usr/bin/python3", []string{"python3", "-m"}, ""},
		{"no padding", procArgs(1, "/bin/sh\x00sh\x00"), "/bin/sh", []string{"sh"}, ""},
		{"no arguments", procArgs(0, "/bin/sh\x00\x00"), "/bin/sh", []string{}, ""},
		{"empty argument", procArgs(2, "/bin/x\x00x\x00\x00"), "/bin/x", []string{"x", ""}, ""},
		{"short", []byte{1, 0}, "", nil, "want a 4-byte argc"},
		{"unterminated path", procArgs(1, "/bin/sh"), "", nil, "executable path has no NUL"},
		{"argc too large", procArgs(1<<30, "/bin/sh\x00sh\x00"), "/bin/sh", nil, "argc 1073741824"},
		{"unterminated argument", procArgs(2, "/bin/sh\x00sh\x00-c"), "/bin/sh", []string{"sh"}, "argument 1 has no NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exe, args, err := parseProcArgs(tt.in)
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) || tt.wantErr == "" && err != nil {
				t.Errorf("parseProcArgs error = %v; want %q", err, tt.wantErr)
			}
			if exe != tt.wantExe || !slices.Equal(args, tt.wantArgs) {
				t.Errorf("parseProcArgs = %q, %q; want %q, %q", exe, args, tt.wantExe, tt.wantArgs)
			}
		})
	}
}
