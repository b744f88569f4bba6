"""structlog set-up: JSON lines off a terminal, readable colour on one."""

from __future__ import annotations

import logging
import sys
import time
from typing import Literal, TextIO, cast

import structlog
from aiokafka.errors import (
    LeaderNotAvailableError,
    NotLeaderForPartitionError,
    StaleMetadata,
)


class _Stderr:
    """Whatever ``sys.stderr`` is at the time of writing (test runners swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class Throttle(logging.Filter):
    """Pass each distinct message template of a logger once per ``window`` s.

    aiokafka logs every failed reconnect, hundreds of lines a second while a
    broker is down; one line per kind of trouble per window says as much.
    """

    def __init__(self, window_s: float = 30.0) -> None:
        super().__init__()
        self.window_s = window_s
        self._last: dict[tuple[str, object], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = time.monotonic()
        if now - self._last.get(key, -self.window_s) < self.window_s:
            return False
        self._last[key] = now
        return True


class Settling(logging.Filter):
    """Demote to DEBUG aiokafka's complaints about a partition leader settling.

    Right after a topic is created, or while a group first fetches its
    offsets, the broker answers "not the leader" or the client has no
    metadata for a node yet; aiokafka logs that at ERROR or WARNING and
    retries, and it clears by itself within a second. Only these templates,
    and only with these errors, are demoted: a broker that is down, a
    refused request or any other error keeps its level.
    """

    TEMPLATES = frozenset(
        {
            "Failed fetch offsets from %s: %s",
            "Unable connect to node with id %s: %s",
            "Got error produce response: %s",
            "Got error produce response on topic-partition %s, retrying. Error: %s",
        }
    )
    ERRORS: tuple[type[Exception], ...] = (
        NotLeaderForPartitionError,
        LeaderNotAvailableError,
        StaleMetadata,
    )

    def __init__(self, level: int) -> None:
        super().__init__()
        self.show_debug = level <= logging.DEBUG

    def _settling(self, value: object) -> bool:
        if isinstance(value, type):
            return issubclass(value, self.ERRORS)
        if isinstance(value, self.ERRORS):
            return True
        # A broker's own error message arrives as text.
        return isinstance(value, str) and any(e.__name__ in value for e in self.ERRORS)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg not in self.TEMPLATES or not isinstance(record.args, tuple):
            return True
        if not any(self._settling(arg) for arg in record.args):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"

        return self.show_debug


_THROTTLE = Throttle()


def configure(
    level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto"
) -> None:
    """Configure structlog and the standard library once per process."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    out = cast(TextIO, _Stderr())
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.CallsiteParameterAdder(
            [structlog.processors.CallsiteParameter.PROCESS]
        ),
    ]
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer()
        if use_console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer, foreign_pre_chain=shared
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # FastStream logs every message at INFO; Courier logs one line per batch.
    for noisy in ("faststream", "faststream.access", "aiokafka", "pymongo"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    # Filters on a logger do not apply to its children, so the handler does it.
    settling = Settling(numeric)
    handler.addFilter(
        lambda r: (
            not r.name.startswith("aiokafka")
            or (settling.filter(r) and _THROTTLE.filter(r))
        )
    )
