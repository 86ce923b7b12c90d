package ipc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func testPipeAddr() string {
	return fmt.Sprintf("npipe:////./pipe/portbroker-test-%d-%d", os.Getpid(), time.Now().UnixNano())
}

func TestListenPipeInUse(t *testing.T) {
	if os.Getenv("PORTBROKER_UNDER_WINE") != "" {
		t.Skip("Wine lets a second first instance of a pipe be created")
	}
	addr := testPipeAddr()
	listen(t, addr)
	ln, err := Listen(addr)
	if err == nil {
		ln.Close()
		t.Fatal("second Listen on a served pipe succeeded")
	}
	if !errors.Is(err, ErrAddrInUse) || !strings.Contains(err.Error(), addr) {
		t.Errorf("second Listen error = %q; want ErrAddrInUse naming %s", err, addr)
	}
}

func TestListenPipeRoundTrip(t *testing.T) {
	if os.Getenv("PORTBROKER_UNDER_WINE") != "" {
		t.Skip("Wine does not implement go-winio's pipe Accept")
	}
	addr := testPipeAddr()
	roundTrip(t, listen(t, addr), addr)
}

func TestUnixUnsupported(t *testing.T) {
	if _, err := Listen("unix:///x.sock"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Listen(unix) error = %v; want ErrUnsupported", err)
	}
	if _, err := Dial(context.Background(), "unix:///x.sock"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Dial(unix) error = %v; want ErrUnsupported", err)
	}
}
