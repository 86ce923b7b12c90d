package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/portbroker/portbroker/broker"
)

// recordVersion is the version of one lease record. The file's schema
// version (in the meta bucket) covers the layout of the buckets; this one
// lets a record say which shape it has.
const recordVersion = 1

// maxNameBytes keeps a name's last-port key within bbolt's key limit.
const maxNameBytes = bolt.MaxKeySize - binary.MaxVarintLen64

// leaseRecord is a lease as stored: JSON, so that the file can be read with
// bbolt's own tools, with times in UTC at nanosecond precision and names for
// enums so that renumbering them in Go cannot change stored meaning.
type leaseRecord struct {
	V         int           `json:"v"`
	ID        string        `json:"id"`
	Namespace string        `json:"namespace"`
	Name      string        `json:"name"`
	Port      uint16        `json:"port"`
	Protocol  string        `json:"protocol"`
	Owner     processRecord `json:"owner"`
	Launcher  processRecord `json:"launcher,omitzero"`
	CreatedAt time.Time     `json:"created_at,omitzero"`
	TTL       int64         `json:"ttl_ns,omitempty"`
	ExpiresAt time.Time     `json:"expires_at,omitzero"`
}

type processRecord struct {
	PID       int       `json:"pid"`
	StartTime time.Time `json:"start_time,omitzero"`
	Name      string    `json:"name,omitempty"`
	User      string    `json:"user,omitempty"`
}

var protocolNames = map[broker.Protocol]string{
	broker.TCP:    "tcp",
	broker.UDP:    "udp",
	broker.TCPUDP: "tcp+udp",
}

// encodeLease returns l's record, or an error naming the field that the
// record could not hold faithfully. Whatever it encodes, decodeLease
// decodes to an equal lease.
func encodeLease(l broker.Lease) ([]byte, error) {
	if err := checkLease(l); err != nil {
		return nil, err
	}
	return json.Marshal(leaseRecord{
		V:         recordVersion,
		ID:        l.ID,
		Namespace: l.Namespace,
		Name:      l.Name,
		Port:      l.Port,
		Protocol:  protocolNames[l.Protocol],
		Owner:     toProcessRecord(l.Owner),
		Launcher:  toProcessRecord(l.Launcher),
		CreatedAt: l.CreatedAt.UTC(),
		TTL:       int64(l.TTL),
		ExpiresAt: l.ExpiresAt.UTC(),
	})
}

// decodeLease parses a record written by encodeLease. It rejects anything
// encodeLease would not have written: unknown fields, trailing data, other
// versions, unknown protocols and leases that fail checkLease.
func decodeLease(data []byte) (broker.Lease, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r leaseRecord
	if err := dec.Decode(&r); err != nil {
		return broker.Lease{}, fmt.Errorf("not a lease record: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return broker.Lease{}, errors.New("not a lease record: data after the record")
	}
	if r.V != recordVersion {
		return broker.Lease{}, fmt.Errorf("record version %d, want %d", r.V, recordVersion)
	}
	proto, ok := parseProtocol(r.Protocol)
	if !ok {
		return broker.Lease{}, &broker.FieldError{Field: "protocol", Rule: fmt.Sprintf("unknown protocol %q", r.Protocol)}
	}
	l := broker.Lease{
		ID:        r.ID,
		Name:      r.Name,
		Namespace: r.Namespace,
		Port:      r.Port,
		Protocol:  proto,
		Owner:     fromProcessRecord(r.Owner),
		Launcher:  fromProcessRecord(r.Launcher),
		CreatedAt: r.CreatedAt.UTC(),
		TTL:       time.Duration(r.TTL),
		ExpiresAt: r.ExpiresAt.UTC(),
	}
	if err := checkLease(l); err != nil {
		return broker.Lease{}, err
	}
	return l, nil
}

func toProcessRecord(p broker.Process) processRecord {
	return processRecord{PID: p.PID, StartTime: p.StartTime.UTC(), Name: p.Name, User: p.User}
}

func fromProcessRecord(r processRecord) broker.Process {
	return broker.Process{PID: r.PID, StartTime: r.StartTime.UTC(), Name: r.Name, User: r.User}
}

func parseProtocol(s string) (broker.Protocol, bool) {
	for p, name := range protocolNames {
		if name == s {
			return p, true
		}
	}
	return 0, false
}

// checkLease holds the rules a lease must meet to be stored and read back
// unchanged: a key bbolt accepts, a port to remember, strings JSON keeps
// byte for byte, and times JSON can write.
func checkLease(l broker.Lease) error {
	switch {
	case l.ID == "":
		return &broker.FieldError{Field: "id", Rule: "must not be empty"}
	case len(l.ID) > bolt.MaxKeySize:
		return &broker.FieldError{Field: "id", Rule: fmt.Sprintf("must be at most %d bytes", bolt.MaxKeySize)}
	case len(l.Namespace)+len(l.Name) > maxNameBytes:
		return &broker.FieldError{Field: "name", Rule: fmt.Sprintf("namespace and name must be at most %d bytes together", maxNameBytes)}
	case l.Port == 0:
		return &broker.FieldError{Field: "port", Rule: "must not be 0"}
	case !l.Protocol.Valid():
		return &broker.FieldError{Field: "protocol", Rule: fmt.Sprintf("must be tcp, udp or tcp+udp, not %s", l.Protocol)}
	}
	for _, s := range []struct{ field, v string }{
		{"id", l.ID},
		{"namespace", l.Namespace},
		{"name", l.Name},
		{"owner.name", l.Owner.Name},
		{"owner.user", l.Owner.User},
		{"launcher.name", l.Launcher.Name},
		{"launcher.user", l.Launcher.User},
	} {
		if !utf8.ValidString(s.v) {
			return &broker.FieldError{Field: s.field, Rule: "must be valid UTF-8"}
		}
	}
	for _, t := range []struct {
		field string
		v     time.Time
	}{
		{"owner.start_time", l.Owner.StartTime},
		{"launcher.start_time", l.Launcher.StartTime},
		{"created_at", l.CreatedAt},
		{"expires_at", l.ExpiresAt},
	} {
		if y := t.v.UTC().Year(); y < 0 || y > 9999 {
			return &broker.FieldError{Field: t.field, Rule: fmt.Sprintf("year %d is outside 0 to 9999", y)}
		}
	}
	return nil
}

// encodeNameKey is the key of a name's last port: the namespace's length,
// then the namespace, then the name, so no two names share a key.
func encodeNameKey(k broker.NameKey) []byte {
	b := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(k.Namespace)+len(k.Name)), uint64(len(k.Namespace)))
	b = append(b, k.Namespace...)
	return append(b, k.Name...)
}

func decodeNameKey(b []byte) (broker.NameKey, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return broker.NameKey{}, errors.New("bad namespace length")
	}
	k := broker.NameKey{Namespace: string(b[w : w+int(n)]), Name: string(b[w+int(n):])}
	if !bytes.Equal(encodeNameKey(k), b) {
		return broker.NameKey{}, errors.New("namespace length not in its shortest form")
	}
	return k, nil
}

func encodePort(port uint16) []byte { return binary.BigEndian.AppendUint16(nil, port) }

func decodePort(b []byte) (uint16, error) {
	if len(b) != 2 {
		return 0, fmt.Errorf("port is %d bytes, want 2", len(b))
	}
	port := binary.BigEndian.Uint16(b)
	if port == 0 {
		return 0, errors.New("port 0")
	}
	return port, nil
}
