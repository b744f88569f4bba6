"""Unit tests of workers.enrichment.build_dto: one DTO per version."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts import (
    ConversationKind,
    ConversationSummary,
    MessageDTO,
    MessageType,
    Status,
    UserSummary,
    encode,
)
from storage.mongo import Document
from storage.state import MessageState, Submission
from workers.enrichment import build_dto

AT = datetime(2024, 5, 1, 12, 0, 0, 123_000, tzinfo=UTC)
USER: Document = {
    "_id": "u-1",
    "display_name": "Ada",
    "avatar_url": "https://example.org/ada.png",
    "is_bot": False,
    "updated_at": None,
    "event_id": "e-1",
}
CONVERSATION: Document = {
    "_id": "c-1",
    "title": "#rust",
    "kind": "group",
    "participant_ids": ["u-1", "u-2"],
    "updated_at": None,
    "event_id": "e-2",
}
STATE = MessageState(
    id="m-1",
    conversation_id="c-1",
    submission=Submission(
        sender_id="u-1",
        content="hi \N{GRINNING FACE}",
        type=MessageType.TEXT,
        timestamp=AT,
        reply_to_id="m-0",
    ),
    recipients=("u-2",),
    status=Status.READ,
    reached=(1, 3, 4),
)


@pytest.mark.parametrize(
    ("version", "status"),
    [(1, Status.SENT), (2, Status.FAILED), (3, Status.DELIVERED), (4, Status.READ)],
)
def test_status_follows_the_version(version: int, status: Status) -> None:
    """Each version's DTO carries the status of that height."""
    dto = build_dto(STATE, version, USER, CONVERSATION)

    assert (version, status) == (dto.version, dto.status)


def test_sender_and_conversation_are_embedded() -> None:
    """The DTO is the message with its sender and conversation summaries."""
    expected = MessageDTO(
        id="m-1",
        version=3,
        sender=UserSummary(
            id="u-1", display_name="Ada", avatar_url="https://example.org/ada.png"
        ),
        conversation=ConversationSummary(
            id="c-1", title="#rust", kind=ConversationKind.GROUP
        ),
        content="hi \N{GRINNING FACE}",
        type=MessageType.TEXT,
        status=Status.DELIVERED,
        timestamp=AT,
        reply_to_id="m-0",
    )

    assert expected == build_dto(STATE, 3, USER, CONVERSATION)


def test_user_without_avatar_gives_none() -> None:
    """A user document without avatar_url embeds avatar_url None."""
    user = {k: v for k, v in USER.items() if k != "avatar_url"}

    assert build_dto(STATE, 1, user, CONVERSATION).sender.avatar_url is None


def test_dto_is_written_in_courier_form() -> None:
    """The encoded DTO has ms-precision Z timestamps and status names."""
    written = encode(build_dto(STATE, 4, USER, CONVERSATION))

    assert b'"status":"READ"' in written
    assert b'"timestamp":"2024-05-01T12:00:00.123Z"' in written
    assert b'"version":4' in written


def test_a_state_without_submission_is_refused() -> None:
    """A message known only from receipts has no DTO; the error names it."""
    pending = MessageState(id="m-9", conversation_id="c-1")

    with pytest.raises(ValueError, match="m-9"):
        build_dto(pending, 1, USER, CONVERSATION)
