//go:build unix

package ipc

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRotateTokenCreatesPrivateFile(t *testing.T) {
	_, path, err := RotateToken(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode = %v, want a regular file with mode 0600", fi.Mode())
	}
}

func TestRotateTokenRefusesUnsafeFile(t *testing.T) {
	const tok = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name        string
		prepare     func(t *testing.T, path string)
		errContains string
	}{
		{"world readable", writeToken(tok, 0o644), "chmod 600"},
		{"group readable", writeToken(tok, 0o640), "chmod 600"},
		{"group writable", writeToken(tok, 0o620), "chmod 600"},
		{"world writable", writeToken(tok, 0o602), "chmod 600"},
		{"a symlink", func(t *testing.T, path string) {
			target := filepath.Join(t.TempDir(), "elsewhere")
			writeToken(tok, 0o600)(t, target)
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}, "is a symlink"},
		{"a directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"another owner", func(t *testing.T, path string) {
			if os.Geteuid() != 0 {
				t.Skip("changing a file's owner needs root")
			}
			writeToken(tok, 0o600)(t, path)
			if err := os.Chown(path, 65534, -1); err != nil {
				t.Fatal(err)
			}
		}, "owned by uid 65534"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "token")
			tt.prepare(t, path)
			before, _ := os.Lstat(path)
			got, _, err := RotateToken(dir)
			if err == nil {
				t.Fatalf("RotateToken = %q; want the file refused", got)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.errContains) {
				t.Errorf("error = %q; want it to name %s and say %q", err, path, tt.errContains)
			}
			if after, _ := os.Lstat(path); after.Mode() != before.Mode() {
				t.Errorf("token file mode changed from %v to %v", before.Mode(), after.Mode())
			}
		})
	}
}

func writeToken(tok string, mode fs.FileMode) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		chmod(t, path, mode)
	}
}
