package boltstore

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portbroker/portbroker/broker"
)

// Records written by this schema version must stay readable: a change to
// the format needs a new record or schema version, not an edit here.
const fullLeaseRecord = `{"v":1,"id":"lease-1","namespace":"shop","name":"web","port":8123,"protocol":"tcp+udp",` +
	`"owner":{"pid":4242,"start_time":"2025-03-01T09:00:00.123456789Z","name":"node","user":"1000"},` +
	`"launcher":{"pid":4200,"start_time":"2025-03-01T08:59:58.987654321Z","name":"make","user":"S-1-5-21-1-2-3-1001"},` +
	`"created_at":"2025-03-01T09:00:01.000000001Z","ttl_ns":90000000000,"expires_at":"2025-03-01T09:01:31.000000001Z"}`

func TestRecordFormat(t *testing.T) {
	got, err := encodeLease(fullLease())
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != fullLeaseRecord {
		t.Errorf("encodeLease =\n%s\nwant\n%s", got, fullLeaseRecord)
	}
	l, err := decodeLease([]byte(fullLeaseRecord))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fullLease(), l); diff != "" {
		t.Errorf("decodeLease (-want +got):\n%s", diff)
	}
}

func TestDecodeLeaseRejects(t *testing.T) {
	tests := []struct {
		name, rec string
	}{
		{"empty", ``},
		{"null", `null`},
		{"not an object", `[1,2]`},
		{"no version", `{"id":"a","port":1,"protocol":"tcp"}`},
		{"newer version", `{"v":2,"id":"a","port":1,"protocol":"tcp"}`},
		{"unknown field", `{"v":1,"id":"a","port":1,"protocol":"tcp","colour":"red"}`},
		{"trailing data", `{"v":1,"id":"a","port":1,"protocol":"tcp"} {}`},
		{"unknown protocol", `{"v":1,"id":"a","port":1,"protocol":"sctp"}`},
		{"no id", `{"v":1,"port":1,"protocol":"tcp"}`},
		{"port 0", `{"v":1,"id":"a","protocol":"tcp"}`},
		{"port out of range", `{"v":1,"id":"a","port":65536,"protocol":"tcp"}`},
		{"bad time", `{"v":1,"id":"a","port":1,"protocol":"tcp","created_at":"yesterday"}`},
		{"year before 0 in UTC", `{"v":1,"id":"a","port":1,"protocol":"tcp","created_at":"0000-01-01T00:00:00+01:00"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if l, err := decodeLease([]byte(tt.rec)); err == nil {
				t.Errorf("decodeLease(%s) = %+v, want an error", tt.rec, l)
			}
		})
	}
}

func FuzzDecodeLease(f *testing.F) {
	for _, l := range []broker.Lease{fullLease(), lease(0), lease(7)} {
		rec, err := encodeLease(l)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(rec)
	}
	for _, s := range []string{
		fullLeaseRecord,
		``,
		`{}`,
		`null`,
		`{"v":1}`,
		`{"v":1,"id":"a","port":1,"protocol":"udp","ttl_ns":-1}`,
		`{"v":1,"id":"\u00e9\ud800","port":65535,"protocol":"tcp+udp","owner":{"pid":-9}}`,
		`{"v":1,"id":"a","port":1,"protocol":"tcp","expires_at":"9999-12-31T23:59:59.999999999-01:00"}`,
		`{"v":1,"ID":"a","Port":1,"PROTOCOL":"tcp","v":1}`,
		"{\"v\":1,\"id\":\"\xff\",\"port\":1,\"protocol\":\"tcp\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := decodeLease(data)
		if err != nil {
			return
		}
		rec, err := encodeLease(l)
		if err != nil {
			t.Fatalf("decoded %q to %+v, which does not encode: %v", data, l, err)
		}
		again, err := decodeLease(rec)
		if err != nil {
			t.Fatalf("re-encoded record %s does not decode: %v", rec, err)
		}
		if diff := cmp.Diff(l, again); diff != "" {
			t.Fatalf("decode, encode, decode of %q changed the lease (-first +second):\n%s", data, diff)
		}
		if rec2, _ := encodeLease(again); !bytes.Equal(rec, rec2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", rec, rec2)
		}
		for _, tm := range []time.Time{l.CreatedAt, l.ExpiresAt, l.Owner.StartTime, l.Launcher.StartTime} {
			if tm.Location() != time.UTC {
				t.Fatalf("decoded time %v is not in UTC", tm)
			}
		}
	})
}
