"""Small HTTP helpers shared by the tests that start a server."""

from __future__ import annotations

import random
import socket
import urllib.error
import urllib.request
from pathlib import Path


def _ephemeral_low() -> int:
    """Where the kernel's range of ports for outgoing connections begins."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port on the loopback address that nothing uses now.

    Chosen below the range the kernel hands to outgoing connections: a port
    from that range (what binding port 0 gives) can be taken by any client
    socket between this check and the server's bind, and was, by a Kafka
    client of another test run on the same machine.
    """
    low = max(_ephemeral_low(), 20_100)
    for _ in range(1000):
        port = random.randrange(20_000, low - 1)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port below the ephemeral range")


def get(url: str) -> tuple[int, str]:
    """Status and body of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return 0, str(error)
