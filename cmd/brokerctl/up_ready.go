package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/portbroker/portbroker/internal/project"
)

// readyPoll is how often a readiness check is tried again.
const readyPoll = 100 * time.Millisecond

// watchReady tells the stack when s is ready, or that it was not within
// its timeout; it says nothing once ctx ends (s exited, or the stack
// stops).
func (st *stack) watchReady(ctx context.Context, s *stackService) {
	var check func(ctx context.Context) error
	switch {
	case s.Ready.Log != nil:
		// The output reader tells; this only keeps the time.
	case s.Ready.HTTP != "":
		url := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) + s.Ready.HTTP
		check = func(ctx context.Context) error { return httpReady(ctx, url) }
	case s.Protocol == project.UDP:
		// Nothing tells that a UDP port is served: started is ready.
		st.events <- stackEvent{svc: s, kind: evReady}
		return
	default:
		check = func(ctx context.Context) error { return portAccepts(ctx, s.port) }
	}
	deadline := time.NewTimer(s.Ready.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	lastErr := errors.New("no line of its output matched " + strconv.Quote(fmt.Sprint(s.Ready.Log)))
	for {
		if check != nil {
			attempt, cancel := context.WithTimeout(ctx, time.Second)
			lastErr = check(attempt)
			cancel()
			if lastErr == nil {
				st.events <- stackEvent{svc: s, kind: evReady}
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			st.events <- stackEvent{svc: s, kind: evNotReady, err: lastErr}
			return
		case <-tick.C:
		}
	}
}

// readyTransport asks the service itself: no proxy, no kept connection.
var readyTransport = &http.Transport{DisableKeepAlives: true}

// portAccepts reports whether port accepts a TCP connection on the IPv4
// or the IPv6 loopback address.
func portAccepts(ctx context.Context, port int) error {
	var d net.Dialer
	var first error
	for _, host := range []string{"127.0.0.1", "::1"} {
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err == nil {
			conn.Close()
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return fmt.Errorf("port %d does not accept connections: %w", port, first)
}

// httpReady reports whether url answers with a status below 400.
func httpReady(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := readyTransport.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
