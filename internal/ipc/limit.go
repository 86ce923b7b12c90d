package ipc

import (
	"log/slog"
	"net"
	"sync"
	"time"
)

// DefaultConnsPerUser is how many connections one user may hold open to
// the daemon at once. A client needs one; the cap keeps a user (another
// member of a socket group, any local user on TCP) from exhausting the
// daemon's descriptors with idle connections.
const DefaultConnsPerUser = 64

// LimitConns wraps ln so that it identifies each connection's peer as it
// accepts it (see ConnIdentity) and closes at once a connection whose user
// already holds perUser connections, or whose peer a local transport
// cannot name. Peers the OS cannot name on TCP count together as one user.
// ServerCredentials reuses the identity found here.
func LimitConns(ln net.Listener, perUser int, log *slog.Logger) net.Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &limitListener{Listener: ln, perUser: perUser, log: log, open: map[string]int{}}
}

type limitListener struct {
	net.Listener
	perUser int
	log     *slog.Logger

	mu         sync.Mutex
	open       map[string]int
	lastWarned time.Time
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		id, idErr := ConnIdentity(c)
		key := id.UID
		if !id.Known {
			key = "unknown"
		}
		l.mu.Lock()
		full := l.open[key] >= l.perUser
		if !full {
			l.open[key]++
		}
		warn := full && time.Since(l.lastWarned) > time.Minute
		if warn {
			l.lastWarned = time.Now()
		}
		l.mu.Unlock()
		if full {
			if warn {
				l.log.Warn("connection refused: the user holds too many connections", "user", key, "limit", l.perUser)
			}
			c.Close()
			continue
		}
		return &limitedConn{Conn: c, id: id, idErr: idErr, l: l, key: key}, nil
	}
}

// limitedConn is an accepted connection that frees its user's slot when
// closed and carries the identity found at accept.
type limitedConn struct {
	net.Conn
	id    Identity
	idErr error
	l     *limitListener
	key   string
	once  sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.open[c.key]--; c.l.open[c.key] <= 0 {
			delete(c.l.open, c.key)
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// peerIdentity is the identity of a connection accepted by LimitConns.
func (c *limitedConn) peerIdentity() (Identity, error) { return c.id, c.idErr }
