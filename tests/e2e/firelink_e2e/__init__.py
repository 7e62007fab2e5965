"""The end-to-end test harness: the real firelink binaries as child processes, driven and read from Python (the
standard library only). ctest puts tests/e2e on PYTHONPATH (tests/e2e/e2e.cmake, firelink_add_e2e_test).

    arguments         the binaries and folders ctest passes a script
    wait              wait_for, free_port, HeldPort, DEADLINE
    admin             the admin token and requests that carry it
    site              Site: firelink-host run on a generated site file; its sink's events
    devices           Sim, Uitd (firelink-sim), LineDevice (a push-only TCP device), PtyPair (socat),
                      serial_sim (a simulator on a pty pair), tcp_sim (one listening on loopback)
    platform_receiver Receiver: firelink-receiver, with or without tokens, its SQLite rows
    http              request_json: JSON over HTTP (the receiver's API)
    gb26875           FrameReader and the frames of a fake monitoring centre
    memory            peak_rss_kb
    diagnostics       test_failed, print_logs_if_failed (in a tearDown)
    msgpack_codec     packb, unpackb (the uplink's batches)
"""
from .admin import ADMIN_TOKEN, admin_headers, admin_request, admin_token_file
from .arguments import take_arguments
from .http import request_json
from .diagnostics import print_logs_if_failed, test_failed
from .devices import LineDevice, PtyPair, Sim, Uitd, serial_sim, tcp_sim
from .memory import peak_rss_kb
from .platform_receiver import Receiver
from .site import Site, driver_events, new_workdir, value_of
from .wait import DEADLINE, HeldPort, free_port, wait_for

__all__ = ["ADMIN_TOKEN", "DEADLINE", "LineDevice", "PtyPair", "Receiver", "Sim", "Site", "Uitd", "admin_headers",
           "admin_request", "admin_token_file", "driver_events", "free_port", "HeldPort", "new_workdir", "peak_rss_kb", "print_logs_if_failed",
           "request_json", "serial_sim", "take_arguments", "tcp_sim", "test_failed", "value_of", "wait_for"]
