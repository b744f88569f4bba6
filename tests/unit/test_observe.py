"""The metrics helpers: a lag reading that cannot fail."""

from __future__ import annotations

import asyncio
import socket

import pytest

from workers import observe
from workers.kafka import LagReader


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def value(name: str, **labels: str) -> float:
    found = observe.REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


async def test_a_lag_reading_that_fails_is_counted_and_logged_not_raised(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """No broker answers: the refresh returns, counts the failure, logs once."""
    before = value("courier_consumer_lag_errors_total")

    reader = LagReader(f"127.0.0.1:{closed_port()}", 2000)
    await observe.refresh_lag(reader, [("g", "t.one"), ("g", "t.two")])
    await reader.close()

    assert 2 == value("courier_consumer_lag_errors_total") - before
    out, err = capfd.readouterr()
    assert 1 == (out + err).count("lag.refresh_failed")


async def test_the_lag_watch_ends_by_itself_and_leaves_no_socket_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Asked to stop while its Kafka client waits on a broker that accepts the
    connection and never answers, the watch returns once the request times
    out. It is not cancelled there, where aiokafka would leave the socket
    open (seen from the other end: the connection never reaches EOF)."""
    monkeypatch.setattr(observe, "LAG_TIMEOUT_MS", 1000)
    accepted: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    connected = asyncio.Event()

    async def silent(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        accepted.append((reader, writer))
        connected.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stopping = asyncio.Event()
    watch = asyncio.create_task(
        observe.watch_lag(f"127.0.0.1:{port}", [("g", "t.one")], 60.0, stopping)
    )
    await asyncio.wait_for(connected.wait(), 10)
    await asyncio.sleep(0.1)  # the client is waiting for its answer now

    stopping.set()
    await asyncio.wait_for(watch, 20)

    assert not watch.cancelled()

    try:
        for reader, _ in accepted:
            # Returns only once the client closed its end.
            await asyncio.wait_for(reader.read(), 5)
    finally:
        for _, writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
