"""Tests for workers.log."""

from __future__ import annotations

import logging

from workers.log import Throttle


def _record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("aiokafka.conn", logging.ERROR, __file__, 1, msg, (), None)


def test_throttle_passes_a_repeated_message_once_per_window() -> None:
    """A flood of one message template yields one line per window."""
    throttle = Throttle(window_s=60)
    passed = [throttle.filter(_record("Unable connect to node %s")) for _ in range(500)]

    assert [True] + [False] * 499 == passed


def test_throttle_lets_different_messages_through() -> None:
    """Distinct kinds of trouble are each reported."""
    throttle = Throttle(window_s=60)

    assert [True, True] == [
        throttle.filter(_record("Unable connect to node %s")),
        throttle.filter(_record("Unable to update metadata from %s")),
    ]


def test_throttle_passes_again_after_the_window() -> None:
    """With a zero window nothing is held back."""
    throttle = Throttle(window_s=0)

    assert [True, True] == [throttle.filter(_record("x")) for _ in range(2)]
