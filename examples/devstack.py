#!/usr/bin/env python3
"""A dev-stack launcher that leaves port allocation to portbroker.

It starts three services through `brokerctl run`, which leases each one a
port (its portbroker.yaml port when free, another one when not), passes it
in PORT and in place of {port}, and makes the service the lease's owner.
`python3 -m http.server {port}` stands in for the real services.

    python3 examples/devstack.py

Ctrl-C stops them all. If this script or a brokerctl run is killed
instead, portbrokerd stops the orphaned services itself, so the next start
does not find its ports taken. Standard library only.

Environment: BROKERCTL names the brokerctl binary (default: brokerctl on
PATH); PORTBROKER_ADDR and the other PORTBROKER_* settings pass through.
"""

import json
import os
import signal
import subprocess
import sys
import time

SERVICES = ["backend", "frontend", "auth"]

# Bounds of the waits; a healthy stack is up in well under a second.
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


def brokerctl():
    return os.environ.get("BROKERCTL", "brokerctl")


def start(name):
    """Starts one service under brokerctl run, in this process group, so a
    Ctrl-C in the terminal reaches every brokerctl at once."""
    cmd = [brokerctl(), "run", name, "--",
           sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL)


def leased_ports(names):
    """Returns {name: port} for the names leased so far."""
    out = subprocess.run([brokerctl(), "leases", "-o", "json", "--namespace", "default"],
                         check=True, capture_output=True, text=True).stdout
    ports = {}
    for lease in json.loads(out).get("leases", []):
        if lease.get("name") in names:
            ports[lease["name"]] = lease["port"]
    return ports


def wait_for_ports(procs):
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} while starting")
        ports = leased_ports(set(procs))
        if len(ports) == len(procs):
            return ports
        if time.monotonic() > deadline:
            missing = sorted(set(procs) - set(ports))
            raise RuntimeError(f"no lease for {', '.join(missing)} after {START_TIMEOUT:.0f}s")
        time.sleep(0.1)


class Terminated(Exception):
    """SIGTERM reached this script."""


def on_sigterm(signum, frame):
    raise Terminated()


def stop(procs, sig, signalled=False):
    """Passes sig to every brokerctl run still running, waits, and kills
    what is left after STOP_TIMEOUT. When the terminal already signalled
    the whole process group (Ctrl-C), each brokerctl got it and passed it
    on: give them a moment before signalling again, which would interrupt
    the services' own shutdown."""
    if signalled:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and any(p.poll() is None for p in procs.values()):
            time.sleep(0.05)
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(sig)
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop; killing it", file=sys.stderr)
            proc.kill()
            proc.wait()


def main():
    # SIGTERM (from a supervisor or kill) stops the stack too.
    signal.signal(signal.SIGTERM, on_sigterm)
    procs = {}
    try:
        for name in SERVICES:
            procs[name] = start(name)
        ports = wait_for_ports(procs)
        for name in SERVICES:
            print(f"{name:10} http://127.0.0.1:{ports[name]}/", flush=True)
        print("Ctrl-C stops the stack.", flush=True)
        while all(p.poll() is None for p in procs.values()):
            time.sleep(0.2)
        for name, proc in procs.items():
            if proc.returncode is not None:
                print(f"{name} exited with {proc.returncode}; stopping the rest", file=sys.stderr)
        stop(procs, signal.SIGTERM)
        return 1
    except KeyboardInterrupt:
        stop(procs, signal.SIGINT, signalled=True)
        print("stopped", flush=True)
        return 0
    except Terminated:
        stop(procs, signal.SIGTERM)
        print("stopped", flush=True)
        return 0
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        print(f"devstack: {e}", file=sys.stderr)
        stop(procs, signal.SIGTERM)
        return 1


if __name__ == "__main__":
    sys.exit(main())
