"""Loopback port checks for the local components (Kafka, HBase, the API, the local cluster)."""

from __future__ import annotations

import random
import socket

#: where a free block of ports is looked for: below Linux's ephemeral range (32768-60999),
#: so that outgoing connections do not take a port between the choice and the bind
BLOCK_RANGE = (20000, 32000)


def port_in_use(port: int) -> bool:
    """True if something listens on 127.0.0.1:port (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def free_port_block(count: int, *, attempts: int = 200, rng: random.Random | None = None) -> int:
    """The first of ``count`` consecutive loopback ports that are all free now.

    A block rather than scattered ports: an operator reads the layout from one number
    (``local_cluster.base_port``), and a restart finds its services where it left them.

    >>> base = free_port_block(4)
    >>> BLOCK_RANGE[0] <= base < BLOCK_RANGE[1] and not any(port_in_use(base + i) for i in range(4))
    True
    """
    rng = rng or random.Random()
    low, high = BLOCK_RANGE
    for _ in range(attempts):
        base = rng.randrange(low, high - count)
        if not any(port_in_use(base + i) for i in range(count)):
            return base
    raise OSError(f"no {count} consecutive free ports on 127.0.0.1 in {low}-{high}")
