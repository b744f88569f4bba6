"""Tests for workers.log."""

from __future__ import annotations

import logging

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    LeaderNotAvailableError,
    NotLeaderForPartitionError,
    StaleMetadata,
)

from workers.log import Settling, Throttle, configure


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


def _aiokafka(msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("aiokafka.x", level, __file__, 1, msg, args, None)


SETTLING = [
    _aiokafka("Failed fetch offsets from %s: %s", 1, NotLeaderForPartitionError("p")),
    _aiokafka("Unable connect to node with id %s: %s", None, StaleMetadata("none")),
    _aiokafka(
        "Got error produce response on topic-partition %s, retrying. Error: %s",
        "t-0",
        NotLeaderForPartitionError,
        level=logging.WARNING,
    ),
    _aiokafka(
        "Got error produce response: %s",
        LeaderNotAvailableError(),
        level=logging.WARNING,
    ),
]


@pytest.mark.parametrize("record", SETTLING)
def test_a_settling_leader_is_demoted_to_debug(record: logging.LogRecord) -> None:
    """The transient errors of a new topic's leaders are not shown at INFO."""
    shown = Settling(logging.INFO).filter(record)

    assert (False, logging.DEBUG, "DEBUG") == (shown, record.levelno, record.levelname)


def test_a_settling_leader_shows_at_debug_level() -> None:
    """With COURIER_LOG_LEVEL=DEBUG they are there, as DEBUG lines."""
    record = _aiokafka(
        "Failed fetch offsets from %s: %s", 1, NotLeaderForPartitionError("p")
    )

    assert Settling(logging.DEBUG).filter(record)
    assert "DEBUG" == record.levelname


@pytest.mark.parametrize(
    "record",
    [
        _aiokafka(
            "Unable connect to node with id %s: %s", 1, KafkaConnectionError("down")
        ),
        _aiokafka("Failed fetch offsets from %s: %s", 1, KafkaError("refused")),
        _aiokafka("Unable to update metadata from %s", 1),
        _aiokafka("something %s", NotLeaderForPartitionError("p")),
    ],
)
def test_real_errors_keep_their_level(record: logging.LogRecord) -> None:
    """A broker that is down, another error or another message is left alone."""
    shown = Settling(logging.INFO).filter(record)

    assert (True, logging.ERROR) == (shown, record.levelno)


def test_configure_hides_the_settling_errors_and_keeps_others(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Through the configured handler: one real error line, no settling noise."""
    configure("INFO", "json")
    log = logging.getLogger("aiokafka.consumer.fetcher")
    log.error("Failed fetch offsets from %s: %s", 1, NotLeaderForPartitionError("p"))
    log.error("Failed fetch offsets from %s: %s", 1, KafkaError("refused"))

    lines = capsys.readouterr().err.splitlines()
    assert 1 == len(lines)
    assert "refused" in lines[0]
