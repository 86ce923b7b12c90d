package daemon

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// EnvNotifySocket is where a service manager (systemd's Type=notify) wants
// to hear that the daemon is ready or stopping.
const EnvNotifySocket = "NOTIFY_SOCKET"

// Notify sends state, such as "READY=1" or "STOPPING=1" (sd_notify(3)),
// to the service manager named by NOTIFY_SOCKET. Without it, it does
// nothing: no manager is listening.
func Notify(state string) error {
	path := os.Getenv(EnvNotifySocket)
	if path == "" {
		return nil
	}
	if strings.HasPrefix(path, "@") {
		// An abstract socket (Linux).
		path = "\x00" + path[1:]
	} else if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("%s=%q: want an absolute path or @abstract name", EnvNotifySocket, path)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify service manager at %s: %w", os.Getenv(EnvNotifySocket), err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify service manager at %s: %w", os.Getenv(EnvNotifySocket), err)
	}
	return nil
}
