package windows

import (
	"errors"
	"unsafe"

	xwin "golang.org/x/sys/windows"
)

// commandLine returns the command line of the process h opens (pid is its
// PID) split into arguments, or nil when Windows will not give it.
//
// ProcessCommandLineInformation (Windows 8.1 and later) needs only the
// PROCESS_QUERY_LIMITED_INFORMATION that h has. Where that class does not
// exist (older Windows, and Wine, which answers STATUS_INVALID_INFO_CLASS)
// the line is read from the process's PEB, which needs PROCESS_VM_READ.
func commandLine(h xwin.Handle, pid int) []string {
	s, err := queryCommandLine(h)
	if errors.Is(err, xwin.STATUS_INVALID_INFO_CLASS) || errors.Is(err, xwin.STATUS_NOT_IMPLEMENTED) {
		s, err = pebCommandLine(pid)
	}
	if err != nil || s == "" {
		// DecomposeCommandLine would not do for an empty line, and
		// CommandLineToArgv reports our own executable for one.
		return nil
	}
	args, err := xwin.DecomposeCommandLine(s)
	if err != nil {
		return nil
	}
	return args
}

// queryCommandLine asks NtQueryInformationProcess for the command line.
func queryCommandLine(h xwin.Handle) (string, error) {
	// The answer is a UNICODE_STRING whose buffer follows it. Words keep it
	// aligned for the pointer inside.
	buf := make([]uint64, 256)
	for range 4 {
		var n uint32
		err := xwin.NtQueryInformationProcess(h, xwin.ProcessCommandLineInformation, unsafe.Pointer(&buf[0]), uint32(8*len(buf)), &n)
		switch {
		case errors.Is(err, xwin.STATUS_INFO_LENGTH_MISMATCH) || errors.Is(err, xwin.STATUS_BUFFER_TOO_SMALL) || errors.Is(err, xwin.STATUS_BUFFER_OVERFLOW):
			if int(n) <= 8*len(buf) {
				return "", err
			}
			buf = make([]uint64, (n+7)/8)
			continue
		case err != nil:
			return "", err
		}
		return (*xwin.NTUnicodeString)(unsafe.Pointer(&buf[0])).String(), nil
	}
	return "", xwin.STATUS_INFO_LENGTH_MISMATCH
}

// pebCommandLine reads the command line out of process pid's memory: the
// PEB names the process parameters, which hold the line as a
// UNICODE_STRING. The caller's handle keeps pid from being reused meanwhile.
func pebCommandLine(pid int) (string, error) {
	h, err := xwin.OpenProcess(xwin.PROCESS_QUERY_INFORMATION|xwin.PROCESS_VM_READ, false, uint32(pid))
	if err != nil {
		return "", err
	}
	defer xwin.CloseHandle(h)
	var pbi xwin.PROCESS_BASIC_INFORMATION
	err = xwin.NtQueryInformationProcess(h, xwin.ProcessBasicInformation, unsafe.Pointer(&pbi), uint32(unsafe.Sizeof(pbi)), nil)
	if err != nil {
		return "", err
	}
	var peb xwin.PEB
	if err := readMemory(h, uintptr(unsafe.Pointer(pbi.PebBaseAddress)), unsafe.Pointer(&peb), unsafe.Sizeof(peb)); err != nil {
		return "", err
	}
	var params xwin.RTL_USER_PROCESS_PARAMETERS
	if err := readMemory(h, uintptr(unsafe.Pointer(peb.ProcessParameters)), unsafe.Pointer(&params), unsafe.Sizeof(params)); err != nil {
		return "", err
	}
	line := params.CommandLine
	if line.Length == 0 || line.Buffer == nil {
		return "", nil
	}
	// Length is in bytes and at most 65534; an odd one is not UTF-16.
	chars := make([]uint16, line.Length/2)
	if err := readMemory(h, uintptr(unsafe.Pointer(line.Buffer)), unsafe.Pointer(&chars[0]), uintptr(len(chars))*2); err != nil {
		return "", err
	}
	return xwin.UTF16ToString(chars), nil
}

// readMemory copies size bytes at addr in the process h opens to dst, all
// of them or an error.
func readMemory(h xwin.Handle, addr uintptr, dst unsafe.Pointer, size uintptr) error {
	var n uintptr
	if err := xwin.ReadProcessMemory(h, addr, (*byte)(dst), size, &n); err != nil {
		return err
	}
	if n != size {
		return xwin.ERROR_PARTIAL_COPY
	}
	return nil
}
