package ipc

import (
	"net"
	"os"
	"testing"

	winplat "github.com/portbroker/portbroker/platform/windows"
)

// TestTCPPeerFromOwnerTable: the daemon's end of a loopback TCP connection
// names the client process from the owner-PID connection table, with its
// user, as the kernel names a pipe client. Wine 8 reports owner PID 0 for
// every socket, so there the peer stays unknown, never misnamed.
func TestTCPPeerFromOwnerTable(t *testing.T) {
	SetConnOwner(winplat.ConnOwner)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	id, err := ConnIdentity(server)
	if err != nil {
		t.Fatal(err)
	}
	if !id.TCP {
		t.Errorf("identity %+v: want TCP set", id)
	}
	if !id.Known && os.Getenv("PORTBROKER_UNDER_WINE") != "" {
		t.Skipf("this Wine reports no owner PID for TCP sockets: the peer is unknown (%+v)", id)
	}
	if !id.Known || id.PID != os.Getpid() || id.UID == "" {
		t.Fatalf("identity %+v; want this process, pid %d, with its user", id, os.Getpid())
	}
}
