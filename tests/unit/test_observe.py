"""The metrics helpers: a lag reading that cannot fail."""

from __future__ import annotations

import socket

import pytest

from workers import observe


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

    await observe.refresh_lag(
        f"127.0.0.1:{closed_port()}", [("g", "t.one"), ("g", "t.two")]
    )

    assert 2 == value("courier_consumer_lag_errors_total") - before
    out, err = capfd.readouterr()
    assert 1 == (out + err).count("lag.refresh_failed")
