//go:build unix && !linux && !darwin

package unix

import "errors"

// BootID is not known on this platform: the store keeps no boot, and a
// reboot is noticed lease by lease, by each owner's start time.
func (h *Host) BootID() (string, error) {
	return "", errors.New("boot id: not supported on this platform")
}
