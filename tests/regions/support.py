"""Helpers of the regions tests."""

from __future__ import annotations

import random
import socket
from contextlib import closing

#: The loopback ports these tests may listen on.
PORTS = range(7200, 7300)

_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free loopback port of our range, never the same one twice."""
    for port in random.sample(PORTS, len(PORTS)):
        if port in _HANDED_OUT:
            continue
        with closing(socket.socket()) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("No port is free in 7200-7299.")
