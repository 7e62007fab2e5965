"""Waiting without sleeping for a fixed time, and a free loopback port.

DEADLINE is a hang guard: a test waits for an event or a count, never for a time to pass, except where it holds a
state for a driver to sample (and then the assertion does not depend on how many samples it took)."""
import socket
import time

DEADLINE = 20.0


def wait_for(predicate, what, timeout=DEADLINE, interval=0.02):
    """predicate()'s first true value; an AssertionError naming `what` (and the last value seen) after `timeout`."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out waiting for " + what + " (last: " + repr(last) + ")")


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now (the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
