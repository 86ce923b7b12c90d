package ipc

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/windows"
)

func openTokenFile(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	return f, nil
}

// checkTokenFile only checks the kind of file: Windows has no mode bits to
// check, and the file is created with a DACL for its user alone.
func checkTokenFile(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("token file %s is not a regular file; remove it and restart portbrokerd to make a new one", path)
	}
	return nil
}

// createPrivateTemp creates a new file, named by pattern's "*" replaced
// with random text, whose protected DACL grants the current user alone:
// the state dir may inherit access for other users (as directories under
// C:\ do), so the file must not inherit it.
func createPrivateTemp(dir, pattern string) (*os.File, error) {
	sid, err := currentUserSID()
	if err != nil {
		return nil, err
	}
	return createTempSDDL(dir, pattern, "D:P(A;;FA;;;"+sid+")")
}

// createServiceTemp is createPrivateTemp for the service's files, which
// the users its pipe admits may read (serviceFileSDDL).
func createServiceTemp(dir, pattern string) (*os.File, error) {
	return createTempSDDL(dir, pattern, serviceFileSDDL())
}

func createTempSDDL(dir, pattern, sddl string) (*os.File, error) {
	sd, err := windows.SecurityDescriptorFromString(sddl)
	if err != nil {
		return nil, fmt.Errorf("security descriptor: %w", err)
	}
	sa := &windows.SecurityAttributes{SecurityDescriptor: sd}
	sa.Length = uint32(unsafe.Sizeof(*sa))
	prefix, suffix, _ := strings.Cut(pattern, "*")
	for range 10 {
		var r [8]byte
		if _, err := rand.Read(r[:]); err != nil {
			return nil, err
		}
		name := filepath.Join(dir, prefix+hex.EncodeToString(r[:])+suffix)
		p, err := windows.UTF16PtrFromString(name)
		if err != nil {
			return nil, err
		}
		h, err := windows.CreateFile(p, windows.GENERIC_READ|windows.GENERIC_WRITE, 0, sa,
			windows.CREATE_NEW, windows.FILE_ATTRIBUTE_NORMAL, 0)
		if errors.Is(err, windows.ERROR_FILE_EXISTS) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "create", Path: name, Err: err}
		}
		return os.NewFile(uintptr(h), name), nil
	}
	return nil, fmt.Errorf("create a temporary file in %s: too many name collisions", dir)
}
