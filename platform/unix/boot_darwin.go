package unix

import (
	"fmt"
	"strings"
	"time"

	xunix "golang.org/x/sys/unix"

	"github.com/portbroker/portbroker/broker"
)

// BootID names the boot the host is in: the kernel's boot session UUID
// (macOS 10.13 and later), else its boot time (kern.boottime).
func (h *Host) BootID() (string, error) {
	if id, err := xunix.Sysctl("kern.bootsessionuuid"); err == nil && strings.TrimSpace(id) != "" {
		return "darwin:" + strings.TrimSpace(id), nil
	}
	tv, err := xunix.SysctlTimeval("kern.boottime")
	if err != nil {
		return "", fmt.Errorf("read kern.boottime: %w", err)
	}
	return broker.BootTimeID(time.Unix(tv.Unix())), nil
}
