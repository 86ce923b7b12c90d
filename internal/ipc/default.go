package ipc

// DefaultAddr returns the per-user address the daemon listens on and
// clients dial when no address is configured:
//
//	Linux and other Unix: unix://$XDG_RUNTIME_DIR/portbroker/portbroker.sock,
//	                      else unix://<temp dir>/portbroker-<uid>/portbroker.sock
//	macOS:                unix://$TMPDIR/portbroker-<uid>/portbroker.sock
//	Windows:              npipe:////./pipe/portbroker-<user name>
//
// PORTBROKER_ADDR is for callers to resolve; DefaultAddr ignores it.
func DefaultAddr() (string, error) { return defaultAddr() }

// DefaultStateDir returns the per-user directory that holds the daemon's
// state when none is configured:
//
//	Linux and other Unix: $XDG_STATE_HOME/portbroker, else ~/.local/state/portbroker
//	macOS:                ~/Library/Application Support/portbroker
//	Windows:              %LOCALAPPDATA%\portbroker
func DefaultStateDir() (string, error) { return defaultStateDir() }
