"""Loopback port checks for the local components (Kafka, HBase, the API)."""

from __future__ import annotations

import socket


def port_in_use(port: int) -> bool:
    """True if something listens on 127.0.0.1:port (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False
