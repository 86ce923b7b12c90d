//go:build unix

package unix

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// parseProcArgs parses macOS's sysctl kern.procargs2: argc as a 32-bit
// integer, the executable's path, NUL padding, then argc arguments, each
// ended by a NUL, then the environment. It is used on macOS only, and
// built on every Unix so that its tests run everywhere.
func parseProcArgs(b []byte) (exe string, args []string, err error) {
	if len(b) < 4 {
		return "", nil, errors.New("procargs: want a 4-byte argc")
	}
	argc := binary.NativeEndian.Uint32(b)
	rest := b[4:]
	path, rest, ok := bytes.Cut(rest, []byte{0})
	if !ok {
		return "", nil, errors.New("procargs: executable path has no NUL")
	}
	rest = bytes.TrimLeft(rest, "\x00")
	// Each argument takes at least its NUL, which bounds a corrupt argc.
	if int64(argc) > int64(len(rest)) {
		return string(path), nil, fmt.Errorf("procargs: argc %d: more than the %d bytes that follow", argc, len(rest))
	}
	args = make([]string, 0, argc)
	for range argc {
		var arg []byte
		if arg, rest, ok = bytes.Cut(rest, []byte{0}); !ok {
			return string(path), args, fmt.Errorf("procargs: argument %d has no NUL", len(args))
		}
		args = append(args, string(arg))
	}
	return string(path), args, nil
}
