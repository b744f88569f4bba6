"""Unit tests of contracts.codec: bytes to models and back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from contracts import (
    ContractError,
    ConversationKind,
    ConversationUpserted,
    DecodeError,
    MessageSubmitted,
    MessageType,
    ReceiptReported,
    ReceiptStatus,
    UserUpserted,
    ValidationFailed,
    decode,
    encode,
)

AT = datetime(2024, 5, 1, 12, 0, 0, 123_000, tzinfo=UTC)


def _message(content: str) -> MessageSubmitted:
    return MessageSubmitted(
        event_id="e-3",
        id="m-1",
        sender_id="u-1",
        conversation_id="c-1",
        content=content,
        type=MessageType.TEXT,
        timestamp=AT,
    )


EXAMPLES: list[BaseModel] = [
    UserUpserted(event_id="e-1", id="u-1", display_name="Ada"),
    ConversationUpserted(
        event_id="e-2",
        id="c-1",
        title="#rust",
        kind=ConversationKind.GROUP,
        participant_ids=["u-1", "u-2"],
    ),
    _message("hi"),
    ReceiptReported(
        event_id="e-4",
        message_id="m-1",
        conversation_id="c-1",
        recipient_id="u-2",
        status=ReceiptStatus.READ,
        timestamp=AT,
    ),
]

# Any Unicode text UTF-8 can carry (no lone surrogates), except NUL.
CONTENT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event_id": "e-1", "id": "u-1", "display_name": "Ad',
        b'{"event_id": "e-1",',
        b"",
        b"not json",
        b"\xff\xfe{}",
        b'{"event_id": "e-1", "id": "u-1", "display_name": "\xe9"}',
    ],
)
def test_truncated_or_non_utf8_json_is_a_decode_error(raw: bytes) -> None:
    """A value that is not UTF-8 JSON raises DecodeError, a ContractError."""
    with pytest.raises(DecodeError, match="could not be parsed as UTF-8 JSON") as info:
        decode(UserUpserted, raw)

    assert isinstance(info.value, ContractError)


def test_a_tombstone_is_a_decode_error() -> None:
    """A record with no value (None) raises DecodeError naming the model."""
    with pytest.raises(DecodeError, match="tombstone") as info:
        decode(UserUpserted, None)

    assert "UserUpserted" in str(info.value)


@pytest.mark.parametrize("raw", [b"[]", b'"x"', b"42", b"null"])
def test_json_that_is_not_an_object_fails_validation(raw: bytes) -> None:
    """Valid JSON of the wrong shape is a ValidationFailed, not a DecodeError."""
    with pytest.raises(ValidationFailed, match="UserUpserted contract"):
        decode(UserUpserted, raw)


def test_contract_errors_are_value_errors() -> None:
    """Callers that catch ValueError also catch every contract error."""
    with pytest.raises(ValueError, match="display_name"):
        decode(UserUpserted, b'{"event_id": "e-1", "id": "u-1"}')


def test_many_problems_are_summarised_after_five() -> None:
    """At most five problems are spelled out; the rest are counted."""
    with pytest.raises(ValidationFailed) as info:
        decode(MessageSubmitted, b"{}")

    assert str(info.value).endswith("and 2 more")


@pytest.mark.parametrize("event", EXAMPLES)
def test_encode_then_decode_round_trips(event: BaseModel) -> None:
    """decode(encode(event)) gives back an equal event."""
    assert event == decode(type(event), encode(event))


def test_encode_writes_timestamps_in_courier_form() -> None:
    """Timestamps are written as ISO 8601 UTC with milliseconds and Z."""
    written = json.loads(encode(_message("hi")))

    assert "2024-05-01T12:00:00.123Z" == written["timestamp"]


def test_encode_writes_non_ascii_as_utf8_not_escapes() -> None:
    """Non-ASCII text is written as its UTF-8 bytes, never as \\u escapes."""
    content = "héllo wörld \N{GRINNING FACE} 日本語"

    raw = encode(_message(content))

    assert content.encode("utf-8") in raw
    assert b"\\u" not in raw


@given(CONTENT)
def test_unicode_content_survives_byte_for_byte(content: str) -> None:
    """Any UTF-8-encodable content comes back with the same UTF-8 bytes."""
    decoded = decode(MessageSubmitted, encode(_message(content)))

    assert content.encode("utf-8") == decoded.content.encode("utf-8")


@given(CONTENT.filter(lambda s: not any(c in s for c in '"\\') and s.isprintable()))
def test_printable_content_is_written_verbatim(content: str) -> None:
    """Printable content needs no escaping, so its UTF-8 bytes appear as is."""
    assert f'"content":"{content}"'.encode() in encode(_message(content))
