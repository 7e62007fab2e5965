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


class HeldPort:
    """A loopback port that refuses connections (bound, not listening) until release(): while a test keeps its platform
    down, no other test's socket can take the port, and the host's retried connects cannot land on it as their own
    ephemeral port (a loopback self-connect), either of which would leave the platform unable to bind it later."""

    def __init__(self):
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]

    def release(self):
        """Just before something binds the port: a socket that never listened leaves no TIME_WAIT behind."""
        if self._sock:
            self._sock.close()
            self._sock = None
        return self.port
