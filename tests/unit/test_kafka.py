"""Unit tests of workers.kafka: Record and the lenient FastStream parser."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from aiokafka import ConsumerRecord
from faststream.message import StreamMessage

from workers.kafka import Record, lenient_parser

BAD_BYTES = b"\xff\xfeabc"
REPLACED = "\ufffd\ufffdabc".encode()


def _consumer_record(offset: int, headers: list[tuple[str, bytes | None]]) -> Any:
    return ConsumerRecord(
        topic="chat.messages.v1",
        partition=2,
        offset=offset,
        timestamp=1714564800123,
        timestamp_type=0,
        key=b"c-1",
        value=b'{"id": "m-1"}',
        checksum=None,
        serialized_key_size=3,
        serialized_value_size=13,
        headers=headers,
    )


@dataclass
class _Message:
    """Stands in for a StreamMessage: lenient_parser only sets raw_message."""

    body: Any
    raw_message: Any = None


@dataclass
class _Original:
    """A fake of FastStream's own parser that records what it was given."""

    calls: list[Any] = field(default_factory=list)

    async def __call__(self, raw: Any) -> StreamMessage[Any]:
        self.calls.append(raw)
        return cast(StreamMessage[Any], _Message(body=raw, raw_message="parsed"))


def _headers() -> list[tuple[str, bytes | None]]:
    return [("binary", BAD_BYTES), ("nothing", None), ("ok", b"fine \xc3\xa9")]


async def test_batch_is_parsed_with_clean_headers() -> None:
    """The original parser sees UTF-8-clean header values and no None."""
    batch = (_consumer_record(7, _headers()), _consumer_record(8, [("ok", b"1")]))
    original = _Original()

    await lenient_parser(batch, original)

    (seen,) = original.calls
    assert isinstance(seen, tuple)
    assert [
        [("binary", REPLACED), ("nothing", b""), ("ok", b"fine \xc3\xa9")],
        [("ok", b"1")],
    ] == [list(r.headers) for r in seen]
    assert [(7, b'{"id": "m-1"}'), (8, b'{"id": "m-1"}')] == [
        (r.offset, r.value) for r in seen
    ]


async def test_batch_message_keeps_the_original_tuple() -> None:
    """raw_message is the original tuple, its headers untouched."""
    batch = (_consumer_record(7, _headers()),)

    message = await lenient_parser(batch, _Original())

    assert batch is message.raw_message
    assert _headers() == list(batch[0].headers)


async def test_single_record_is_parsed_and_kept() -> None:
    """A lone record is cleaned for the parser and kept as raw_message."""
    record = _consumer_record(9, _headers())
    original = _Original()

    message = await lenient_parser(record, original)

    (seen,) = original.calls
    assert not isinstance(seen, tuple)
    assert [("binary", REPLACED), ("nothing", b""), ("ok", b"fine \xc3\xa9")] == list(
        seen.headers
    )
    assert record is message.raw_message


def test_record_from_consumer_keeps_everything() -> None:
    """Record.from_consumer copies topic, offset, key, value, headers, time."""
    raw = _consumer_record(11, _headers())

    record = Record.from_consumer(raw)

    assert (
        Record(
            topic="chat.messages.v1",
            partition=2,
            offset=11,
            key=b"c-1",
            value=b'{"id": "m-1"}',
            headers=(
                ("binary", BAD_BYTES),
                ("nothing", None),
                ("ok", b"fine \xc3\xa9"),
            ),
            timestamp_ms=1714564800123,
        )
        == record
    )


def test_record_header_finds_the_first_value() -> None:
    """Record.header returns the first value of a name, None when absent."""
    record = Record.from_consumer(
        _consumer_record(1, [("a", b"1"), ("a", b"2"), ("n", None)])
    )

    assert (b"1", None, None) == (
        record.header("a"),
        record.header("n"),
        record.header("z"),
    )
