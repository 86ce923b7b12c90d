package windows

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/portbroker/portbroker/broker"
)

// Winsock error numbers, spelled out here so that the classification builds
// and is tested on every OS.
const (
	wsaEACCES          syscall.Errno = 10013
	wsaEAFNOSUPPORT    syscall.Errno = 10047
	wsaEADDRINUSE      syscall.Errno = 10048
	wsaEADDRNOTAVAIL   syscall.Errno = 10049
	wsaEPROTONOSUPPORT syscall.Errno = 10043
)

// classifyBind explains why binding port on network ("tcp4", "udp6", ...)
// failed with err. excluded are the host's excluded port ranges; held says
// whether another socket is known to hold the port, which turns a WSAEACCES
// outside the excluded ranges into exclusive use rather than permission.
func classifyBind(network string, port uint16, err error, excluded []broker.PortRange, held bool) *broker.BindError {
	be := &broker.BindError{Port: port, Network: network, Class: broker.BindOther, Detail: err.Error(), Err: err}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return be
	}
	proto := strings.TrimRight(network, "46")
	switch errno {
	case wsaEADDRINUSE:
		be.Class = broker.BindInUse
		be.Detail = "another socket is bound to the port (WSAEADDRINUSE, 10048)"
		be.Fix = fmt.Sprintf("Stop the process holding port %d (`brokerctl who %d` names it) or choose another port.", port, port)
	case wsaEACCES:
		r, ok := containing(excluded, port)
		switch {
		case ok && strings.Contains(r.Source, SourceAdministered):
			be.Class = broker.BindExcluded
			be.Detail = fmt.Sprintf("the port lies in excluded range %s, which an administrator set aside with netsh (WSAEACCES, 10013)", r)
			be.Fix = fmt.Sprintf("Choose a port outside %s, or as administrator remove the exclusion with `netsh int ipv4 delete excludedportrange protocol=%s` (`show excludedportrange` lists it).", r, proto)
		case ok:
			be.Class = broker.BindExcluded
			be.Detail = fmt.Sprintf("the port lies in excluded range %s, which Windows reserved, typically for Hyper-V, WinNAT, WSL or Docker (WSAEACCES, 10013)", r)
			be.Fix = fmt.Sprintf("Choose a port outside %s, or as administrator run `net stop winnat`, `netsh int ipv4 add excludedportrange protocol=%s startport=%d numberofports=1` to keep the port for your service, then `net start winnat`.", r, proto, port)
		case held:
			be.Class = broker.BindExclusive
			be.Detail = "another process holds the port for exclusive use (WSAEACCES, 10013)"
			be.Fix = fmt.Sprintf("Stop the process holding port %d (`brokerctl who %d` names it) or choose another port.", port, port)
		default:
			be.Class = broker.BindPermission
			be.Detail = "Windows denied access to the port (WSAEACCES, 10013)"
			be.Fix = "Choose another port, or check whether security software or another user's service blocks this one."
		}
	case wsaEADDRNOTAVAIL:
		be.Detail = "the address is not available on this host (WSAEADDRNOTAVAIL, 10049)"
	}
	return be
}

// containing returns the first range in rs that contains port.
func containing(rs []broker.PortRange, port uint16) (broker.PortRange, bool) {
	for _, r := range rs {
		if r.Contains(port) {
			return r, true
		}
	}
	return broker.PortRange{}, false
}
