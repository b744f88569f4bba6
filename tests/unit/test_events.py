"""Unit tests of contracts.events, read the way workers read them: via decode."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from contracts import (
    MAX_CONTENT_BYTES,
    ContractError,
    ConversationKind,
    ConversationUpserted,
    MessageSubmitted,
    MessageType,
    ReceiptReported,
    ReceiptStatus,
    UserUpserted,
    ValidationFailed,
    decode,
)

USER = b'{"event_id": "e-1", "schema_version": 1, "id": "u-1", "display_name": "Ada"}'
CONVERSATION = (
    b'{"event_id": "e-2", "schema_version": 1, "id": "c-1", "title": "#rust", '
    b'"kind": "group", "participant_ids": ["u-1", "u-2"]}'
)
MESSAGE = (
    b'{"event_id": "e-3", "schema_version": 1, "id": "m-1", "sender_id": "u-1", '
    b'"conversation_id": "c-1", "content": "hi", "type": "TEXT", '
    b'"timestamp": "2024-05-01T12:00:00.123Z"}'
)
RECEIPT = (
    b'{"event_id": "e-4", "schema_version": 1, "message_id": "m-1", '
    b'"conversation_id": "c-1", "recipient_id": "u-2", "status": "READ", '
    b'"timestamp": "2024-05-01T12:00:05Z"}'
)


def _message(**changes: Any) -> bytes:
    """The example message record with some fields replaced (None: removed)."""
    fields = json.loads(MESSAGE)
    for name, value in changes.items():
        if value is None:
            del fields[name]
        else:
            fields[name] = value
    return json.dumps(fields).encode("utf-8")


def _failure(raw: bytes) -> str:
    """The message of the ValidationFailed that decoding ``raw`` raises."""
    with pytest.raises(ValidationFailed) as info:
        decode(MessageSubmitted, raw)
    return str(info.value)


def test_user_example_is_accepted_as_written() -> None:
    """The chat.users.v1 example from the brief decodes to its fields."""
    expected = UserUpserted(event_id="e-1", id="u-1", display_name="Ada")

    assert expected == decode(UserUpserted, USER)


def test_conversation_example_is_accepted_as_written() -> None:
    """The chat.conversations.v1 example decodes, kind as a lower-case name."""
    expected = ConversationUpserted(
        event_id="e-2",
        id="c-1",
        title="#rust",
        kind=ConversationKind.GROUP,
        participant_ids=["u-1", "u-2"],
    )

    assert expected == decode(ConversationUpserted, CONVERSATION)


def test_message_example_is_accepted_as_written() -> None:
    """The chat.messages.v1 example decodes with an aware UTC timestamp."""
    expected = MessageSubmitted(
        event_id="e-3",
        id="m-1",
        sender_id="u-1",
        conversation_id="c-1",
        content="hi",
        type=MessageType.TEXT,
        timestamp=datetime(2024, 5, 1, 12, 0, 0, 123_000, tzinfo=UTC),
    )

    assert expected == decode(MessageSubmitted, MESSAGE)


def test_receipt_example_is_accepted_as_written() -> None:
    """The chat.receipts.v1 example decodes and is not marked derived."""
    expected = ReceiptReported(
        event_id="e-4",
        message_id="m-1",
        conversation_id="c-1",
        recipient_id="u-2",
        status=ReceiptStatus.READ,
        timestamp=datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC),
        derived=False,
    )

    assert expected == decode(ReceiptReported, RECEIPT)


@pytest.mark.parametrize(
    ("model", "raw"),
    [
        (UserUpserted, USER),
        (ConversationUpserted, CONVERSATION),
        (MessageSubmitted, MESSAGE),
        (ReceiptReported, RECEIPT),
    ],
)
def test_unknown_extra_fields_are_ignored(model: type[BaseModel], raw: bytes) -> None:
    """A publisher may add fields; consumers read the same event."""
    fields = json.loads(raw) | {"colour": "red", "nested": {"a": [1, 2]}}
    extended = json.dumps(fields).encode("utf-8")

    assert decode(model, raw) == decode(model, extended)


def test_schema_version_defaults_to_one() -> None:
    """An event without schema_version is read as version 1."""
    fields = json.loads(USER)
    del fields["schema_version"]

    assert 1 == decode(UserUpserted, json.dumps(fields).encode()).schema_version


def test_other_schema_versions_are_rejected() -> None:
    """Only schema_version 1 is understood."""
    assert "schema_version" in _failure(_message(schema_version=2))


def test_missing_fields_are_named() -> None:
    """A record lacking required fields is refused, naming each missing field."""
    message = _failure(b'{"event_id": "e-3", "schema_version": 1, "id": "m-1"}')

    for name in ("sender_id", "conversation_id", "content", "type", "timestamp"):
        assert f"{name}: Field required" in message


def test_unknown_message_type_names_field_and_value() -> None:
    """An unknown enumeration value is refused with the field and the value."""
    message = _failure(_message(type="BOGUS"))

    assert "type:" in message
    assert "'BOGUS'" in message


def test_lower_case_message_type_is_rejected() -> None:
    """Enumerations travel as upper-case names only."""
    assert "'text'" in _failure(_message(type="text"))


def test_unknown_receipt_status_names_field_and_value() -> None:
    """A receipt with a status outside DELIVERED/READ/FAILED is refused."""
    fields = json.loads(RECEIPT) | {"status": "SEEN"}
    with pytest.raises(ValidationFailed) as info:
        decode(ReceiptReported, json.dumps(fields).encode())

    assert "status:" in str(info.value)
    assert "'SEEN'" in str(info.value)


def test_bad_timestamp_names_field_and_value() -> None:
    """A naive timestamp is refused, naming the field and the value."""
    message = _failure(_message(timestamp="2024-05-01T12:00:00"))

    assert "timestamp:" in message
    assert "'2024-05-01T12:00:00'" in message


def test_content_at_the_byte_limit_is_accepted() -> None:
    """Content of exactly MAX_CONTENT_BYTES UTF-8 bytes is accepted."""
    content = "\N{GRINNING FACE}" * (MAX_CONTENT_BYTES // 4)

    assert content == decode(MessageSubmitted, _message(content=content)).content


def test_ascii_content_at_the_byte_limit_is_accepted() -> None:
    """MAX_CONTENT_BYTES ASCII characters are accepted."""
    content = "a" * MAX_CONTENT_BYTES

    assert content == decode(MessageSubmitted, _message(content=content)).content


def test_content_over_the_byte_limit_is_rejected_though_short_in_characters() -> None:
    """The limit counts UTF-8 bytes: 4-byte emoji under the char count still fail."""
    content = "\N{GRINNING FACE}" * (MAX_CONTENT_BYTES // 4 + 1)
    assert len(content) < MAX_CONTENT_BYTES

    message = _failure(_message(content=content))

    assert "content:" in message
    assert f"{MAX_CONTENT_BYTES + 4:,} bytes" in message


def test_ascii_content_one_byte_over_the_limit_is_rejected() -> None:
    """MAX_CONTENT_BYTES + 1 bytes of content is refused."""
    assert "over the limit" in _failure(_message(content="a" * (MAX_CONTENT_BYTES + 1)))


@pytest.mark.parametrize("field", ["content", "sender_id"])
def test_nul_is_rejected(field: str) -> None:
    """NUL (U+0000) is refused in text and ids, naming the field."""
    assert f"{field}:" in _failure(_message(**{field: "a\x00b"}))


def test_nul_is_rejected_in_display_names() -> None:
    """A user's display name must not hold NUL either."""
    fields = json.loads(USER) | {"display_name": "Ada\x00"}
    with pytest.raises(ValidationFailed, match="display_name"):
        decode(UserUpserted, json.dumps(fields).encode())


def test_lone_surrogate_in_json_is_rejected() -> None:
    """A JSON \\ud800 escape (a lone surrogate) can never be decoded."""
    raw = MESSAGE.replace(b'"hi"', b'"h\\ud800i"')

    with pytest.raises(ContractError):
        decode(MessageSubmitted, raw)


def test_lone_surrogate_in_python_text_is_rejected() -> None:
    """A Python caller cannot build content holding a lone surrogate."""
    fields = json.loads(MESSAGE) | {"content": "h\ud800i"}

    with pytest.raises(ValidationError, match="surrogate"):
        MessageSubmitted.model_validate(fields)


@pytest.mark.parametrize(
    "bad_id",
    ["u 1", " u-1", "u-1 ", "u-1\n", "\tu-1", "u\u00a01", "u\u2028x", "u\x07"],
)
def test_ids_with_whitespace_or_control_characters_are_rejected(bad_id: str) -> None:
    """Ids must not hold whitespace or control characters; the id is named."""
    message = _failure(_message(sender_id=bad_id))

    assert "sender_id:" in message
    assert repr(bad_id)[:30] in message


@pytest.mark.parametrize("bad_id", ["", "x" * 129])
def test_ids_must_be_1_to_128_characters(bad_id: str) -> None:
    """Empty ids and ids over 128 characters are refused."""
    assert "id:" in _failure(_message(id=bad_id))


def test_unicode_ids_without_spaces_are_accepted() -> None:
    """Letters from any script are fine in an id."""
    assert "utilisateur-é-日本" == (
        decode(MessageSubmitted, _message(sender_id="utilisateur-é-日本")).sender_id
    )


@pytest.mark.parametrize(
    ("raw", "model", "field", "value"),
    [
        (USER, UserUpserted, "display_name", "Grace"),
        (CONVERSATION, ConversationUpserted, "title", "#go"),
        (MESSAGE, MessageSubmitted, "content", "changed"),
        (RECEIPT, ReceiptReported, "status", "DELIVERED"),
    ],
)
def test_models_are_frozen(
    raw: bytes, model: type[BaseModel], field: str, value: str
) -> None:
    """A decoded event cannot be changed after the fact."""
    event = decode(model, raw)

    with pytest.raises(ValidationError, match="frozen"):
        setattr(event, field, value)

    assert decode(model, raw) == event
