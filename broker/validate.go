package broker

import (
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest name or namespace, in bytes.
const MaxNameLen = 128

// MinTTL is the shortest TTL a lease may have; anything shorter would
// expire before its owner could use the port.
const MinTTL = time.Second

// MaxTTL is the longest TTL a lease may have. A lease meant to last longer
// should have none and live as long as its owner; the bound also refuses a
// duration the API saturated because it did not fit.
const MaxTTL = 365 * 24 * time.Hour

// checkName applies the rules for names and namespaces: 1 to 128 bytes of
// printable UTF-8 with no surrounding space.
func checkName(field, s string) error {
	switch {
	case s == "":
		return fieldErr(field, "must not be empty")
	case len(s) > MaxNameLen:
		return fieldErr(field, "must be at most %d bytes, got %d", MaxNameLen, len(s))
	case !utf8.ValidString(s):
		return fieldErr(field, "must be valid UTF-8")
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fieldErr(field, "must be printable: contains %U", r)
		}
	}
	if first, _ := utf8.DecodeRuneInString(s); unicode.IsSpace(first) {
		return fieldErr(field, "must not start with a space")
	}
	if last, _ := utf8.DecodeLastRuneInString(s); unicode.IsSpace(last) {
		return fieldErr(field, "must not end with a space")
	}
	return nil
}

func checkPort(field string, port int, zeroOK bool) error {
	if port == 0 && zeroOK {
		return nil
	}
	if port < 1 || port > 65535 {
		if zeroOK {
			return fieldErr(field, "must be 0 (any port) or from 1 to 65535, got %d", port)
		}
		return fieldErr(field, "must be from 1 to 65535, got %d", port)
	}
	return nil
}

func checkProtocol(p Protocol) (Protocol, error) {
	if p == 0 {
		return TCP, nil
	}
	if !p.Valid() {
		return 0, fieldErr("protocol", "unknown value %d: want PROTOCOL_TCP, PROTOCOL_UDP or PROTOCOL_TCP_UDP", p)
	}
	return p, nil
}

func checkTTL(field string, ttl time.Duration) error {
	if ttl < 0 {
		return fieldErr(field, "must not be negative, got %s", ttl)
	}
	if ttl > 0 && ttl < MinTTL {
		return fieldErr(field, "must be 0 (no TTL) or at least %s, got %s", MinTTL, ttl)
	}
	if ttl > MaxTTL {
		return fieldErr(field, "must be at most %s (give no TTL for a lease that lives as long as its owner), got %s", MaxTTL, ttl)
	}
	return nil
}

// checkPID applies the rules every PID field shares; 0 is the caller's to
// interpret.
func checkPID(field string, pid int) error {
	switch {
	case pid < 0:
		return fieldErr(field, "must not be negative, got %d", pid)
	case pid == 1:
		return fieldErr(field, "PID 1 (init) cannot own or launch a lease")
	}
	return nil
}

func checkLeaseID(id string) error {
	if id == "" {
		return fieldErr("lease_id", "must not be empty")
	}
	if len(id) > MaxNameLen || !utf8.ValidString(id) {
		return fieldErr("lease_id", "must be a lease id as ListLeases shows it")
	}
	return nil
}

// CheckNamespace validates a namespace filter: empty (every namespace) or
// a valid namespace.
func CheckNamespace(ns string) error {
	if ns == "" {
		return nil
	}
	return checkName("namespace", ns)
}
