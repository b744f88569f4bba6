"""Unit tests of workers.runtime.dlq_headers: originals kept, origin added."""

from __future__ import annotations

from workers.kafka import Record
from workers.runtime import Rejected, dlq_headers

ORIGINAL: tuple[tuple[str, bytes | None], ...] = (
    ("trace-id", b"abc-123"),
    ("binary", b"\xff\xfe\x00\x80raw"),
    ("empty", b""),
    ("gone", None),
    ("trace-id", b"second value"),
    ("also-gone", None),
)


def _record(headers: tuple[tuple[str, bytes | None], ...] = ORIGINAL) -> Record:
    return Record(
        topic="chat.messages.v1",
        partition=3,
        offset=42,
        key=b"c-1",
        value=b'{"not": "valid"}',
        headers=headers,
        timestamp_ms=1714564800123,
    )


def _added(headers: list[tuple[str, bytes]], count: int) -> dict[str, bytes]:
    return dict(headers[count:])


def test_original_headers_are_kept_byte_for_byte_and_in_order() -> None:
    """Original names and values come first, unchanged, non-UTF-8 bytes too."""
    headers = dlq_headers(Rejected(_record(), "bad record"), "status")

    assert [
        ("trace-id", b"abc-123"),
        ("binary", b"\xff\xfe\x00\x80raw"),
        ("empty", b""),
        ("gone", b""),
        ("trace-id", b"second value"),
        ("also-gone", b""),
    ] == headers[: len(ORIGINAL)]


def test_origin_and_reason_headers_are_added() -> None:
    """courier.dlq.* names the reason, error, worker, topic, partition, offset."""
    rejected = Rejected(_record(), "content: too long", error="ValidationFailed")

    added = _added(dlq_headers(rejected, "status"), len(ORIGINAL))

    assert {
        "courier.dlq.reason": b"content: too long",
        "courier.dlq.error": b"ValidationFailed",
        "courier.dlq.worker": b"status",
        "courier.dlq.topic": b"chat.messages.v1",
        "courier.dlq.partition": b"3",
        "courier.dlq.offset": b"42",
        "courier.dlq.timestamp_ms": b"1714564800123",
    } == {
        k: v
        for k, v in added.items()
        if k not in ("courier.dlq.at_ms", "courier.dlq.null_headers")
    }
    assert added["courier.dlq.at_ms"].isdigit()


def test_null_header_names_are_recorded() -> None:
    """Null-valued header names are listed, as a JSON array, in null_headers."""
    added = _added(dlq_headers(Rejected(_record(), "r"), "w"), len(ORIGINAL))

    assert b'["gone", "also-gone"]' == added["courier.dlq.null_headers"]


def test_no_null_headers_header_without_nulls() -> None:
    """Without null values there is no courier.dlq.null_headers header."""
    headers = dlq_headers(Rejected(_record((("a", b"1"),)), "r"), "w")

    assert "courier.dlq.null_headers" not in dict(headers)
    assert ("a", b"1") == headers[0]


def test_reason_is_written_as_utf8() -> None:
    """A non-ASCII reason is encoded as UTF-8."""
    reason = "content 'héllo \N{GRINNING FACE}' is bad"

    added = _added(dlq_headers(Rejected(_record(()), reason), "w"), 0)

    assert reason.encode("utf-8") == added["courier.dlq.reason"]


def test_default_error_is_contract_error() -> None:
    """A rejection without an error class is recorded as a ContractError."""
    added = _added(dlq_headers(Rejected(_record(()), "r"), "w"), 0)

    assert b"ContractError" == added["courier.dlq.error"]


def test_null_header_names_are_recorded_unambiguously() -> None:
    """Different sets of null header names give different null_headers values."""
    one = _added(dlq_headers(Rejected(_record((("a,b", None),)), "r"), "w"), 1)
    two = _added(
        dlq_headers(Rejected(_record((("a", None), ("b", None))), "r"), "w"), 2
    )

    assert one["courier.dlq.null_headers"] != two["courier.dlq.null_headers"]
