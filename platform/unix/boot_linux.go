package unix

import (
	"fmt"
	"os"
	"strings"
)

// bootIDFile holds a UUID the kernel makes anew at each boot.
const bootIDFile = "/proc/sys/kernel/random/boot_id"

// BootID names the boot the host is in: the kernel's boot UUID.
func (h *Host) BootID() (string, error) {
	b, err := os.ReadFile(bootIDFile)
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("read boot id: %s is empty", bootIDFile)
	}
	return "linux:" + id, nil
}
