package windows

import (
	"fmt"
	"time"
	"unsafe"

	xwin "golang.org/x/sys/windows"

	"github.com/portbroker/portbroker/broker"
)

var procGetTickCount64 = xwin.NewLazySystemDLL("kernel32.dll").NewProc("GetTickCount64")

// systemTimeOfDay is SYSTEM_TIMEOFDAY_INFORMATION.
type systemTimeOfDay struct {
	BootTime      int64 // FILETIME units
	CurrentTime   int64
	TimeZoneBias  int64
	TimeZoneID    uint32
	Reserved      uint32
	BootTimeBias  uint64
	SleepTimeBias uint64
}

// BootID names the boot the host is in by its boot time, as the kernel
// keeps it (adjusted when the clock is set), else as now less the uptime.
func (h *Host) BootID() (string, error) {
	var info systemTimeOfDay
	var n uint32
	err := xwin.NtQuerySystemInformation(xwin.SystemTimeOfDayInformation, unsafe.Pointer(&info), uint32(unsafe.Sizeof(info)), &n)
	if err == nil && info.BootTime > 0 {
		ft := xwin.Filetime{LowDateTime: uint32(info.BootTime), HighDateTime: uint32(info.BootTime >> 32)}
		return broker.BootTimeID(time.Unix(0, ft.Nanoseconds())), nil
	}
	ms, _, _ := procGetTickCount64.Call()
	up := time.Duration(ms) * time.Millisecond
	if up <= 0 {
		return "", fmt.Errorf("boot time: NtQuerySystemInformation: %v; and no uptime", err)
	}
	return broker.BootTimeID(time.Now().Add(-up)), nil
}
