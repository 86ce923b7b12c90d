//go:build unix

package ipc

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestLimitConns: a user's connections beyond the cap are closed at
// accept; closing an accepted one frees its slot; the accepted ones carry
// the identity found at accept.
func TestLimitConns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.sock")
	raw, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln := LimitConns(raw, 2, nil)
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closedByServer := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		return err != nil && !isTimeout(err)
	}
	dial()
	dial()
	first, second := <-accepted, <-accepted
	if id, err := ConnIdentity(first); err != nil || !id.Known {
		t.Errorf("identity of an accepted connection = %+v, %v; want the peer named", id, err)
	}
	third := dial()
	if !closedByServer(third) {
		t.Error("a third connection over a cap of 2 was not closed")
	}
	first.Close()
	dial()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("a connection after one was closed was not accepted")
	}
	second.Close()
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
