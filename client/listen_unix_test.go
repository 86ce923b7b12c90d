//go:build unix

package client_test

import (
	"errors"
	"net"
	"strconv"
	"testing"

	"github.com/portbroker/portbroker/client"
)

// TestListenTwiceKeepsFirstLease: a second Listen with the name this
// process already serves on is refused, and the first listener's lease
// and port stay as they were.
func TestListenTwiceKeepsFirstLease(t *testing.T) {
	c, _ := realClient(t)
	first, err := c.Listen(t.Context(), "api")
	if err != nil {
		t.Fatalf("first Listen: %v", err)
	}
	defer first.Close()
	lease := first.(*client.Listener).Lease()

	second, err := c.Listen(t.Context(), "api")
	if err == nil {
		second.Close()
		t.Fatalf("second Listen with the same name succeeded on %v", second.Addr())
	}
	if !errors.Is(err, client.ErrNameTaken) {
		t.Errorf("second Listen: %v; want ErrNameTaken", err)
	}
	got := leaseByName(t, c, "api")
	if got == nil || got.ID != lease.ID || got.Port != lease.Port {
		t.Fatalf("after the second Listen the name's lease is %+v; want the first listener's %s on %d", got, lease.ID, lease.Port)
	}
	select {
	case <-lease.Done():
		t.Fatalf("first listener's lease ended: %v", lease.Err())
	default:
	}
	conn, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(lease.Port)))
	if err != nil {
		t.Fatalf("first listener no longer reachable: %v", err)
	}
	conn.Close()
}
