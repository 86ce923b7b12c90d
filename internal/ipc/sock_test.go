package ipc

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

// roundTrip accepts one connection on ln, dials addr and checks that bytes
// flow both ways.
func roundTrip(t *testing.T, ln net.Listener, addr string) {
	t.Helper()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(c, io.LimitReader(c, 4))
		served <- err
	}()
	c, err := Dial(context.Background(), addr)
	if err != nil {
		t.Fatalf("Dial(%s): %v", addr, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "ping" {
		t.Errorf("echo = %q, want %q", got, "ping")
	}
	if err := <-served; err != nil {
		t.Errorf("server side: %v", err)
	}
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := Listen(addr)
	if err != nil {
		t.Fatalf("Listen(%s): %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func TestListenTCP(t *testing.T) {
	ln := listen(t, "tcp://127.0.0.1:0")
	addr := "tcp://" + ln.Addr().String()
	roundTrip(t, ln, addr)

	_, err := Listen(addr)
	if !errors.Is(err, ErrAddrInUse) || !strings.Contains(err.Error(), addr) {
		t.Errorf("Listen(%s) on a held port: error = %v; want ErrAddrInUse naming it", addr, err)
	}
}

func TestListenTCPRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"tcp://0.0.0.0:0", "tcp://[::]:0", "tcp://192.0.2.1:0"} {
		ln, err := Listen(addr)
		if err == nil {
			ln.Close()
			t.Errorf("Listen(%s) succeeded; want it refused", addr)
			continue
		}
		if !errors.Is(err, ErrInvalidAddr) || !strings.Contains(err.Error(), "not loopback") {
			t.Errorf("Listen(%s) error = %q; want the loopback rule", addr, err)
		}
	}
}
