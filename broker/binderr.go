package broker

import "fmt"

// BindClass classifies why a port does not bind.
type BindClass uint8

const (
	BindOther BindClass = iota
	// BindInUse: another socket holds the port (EADDRINUSE, WSAEADDRINUSE).
	BindInUse
	// BindExcluded: the OS reserved or excluded the port (Windows 10013 inside
	// an excluded range).
	BindExcluded
	// BindExclusive: another process holds the port with exclusive use
	// (Windows SO_EXCLUSIVEADDRUSE, 10013).
	BindExclusive
	// BindPermission: the caller may not bind it (EACCES below 1024, 10013).
	BindPermission
)

func (c BindClass) String() string {
	switch c {
	case BindInUse:
		return "in use"
	case BindExcluded:
		return "excluded range"
	case BindExclusive:
		return "exclusive use"
	case BindPermission:
		return "permission"
	}
	return "other"
}

// BindError is a failed bind probe, classified and explained.
type BindError struct {
	Port  uint16
	Class BindClass
	// Network is the probe that failed, such as "tcp4" or "udp6".
	Network string
	// Detail is the OS error in words; Fix is one sentence on what to do.
	Detail string
	Fix    string
	Err    error
}

func (e *BindError) Error() string {
	return fmt.Sprintf("bind %s port %d: %s", e.Network, e.Port, e.Detail)
}

func (e *BindError) Unwrap() error { return e.Err }
