"""Unit tests of storage.messages' pure document mapping (no store needed)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from contracts import MessageType, Progress, Status
from storage.messages import from_document, to_document
from storage.state import MessageState, Submission

AT = datetime(2024, 5, 1, 12, 0, 0, 123_000, tzinfo=UTC)

FULL = MessageState(
    id="m-1",
    conversation_id="c-1",
    submission=Submission(
        sender_id="u-1",
        content="héllo \N{GRINNING FACE}",
        type=MessageType.ACTION,
        timestamp=AT,
        reply_to_id="m-0",
    ),
    recipients=("u-2", "u-3"),
    progress={
        "u-3": Progress(delivered=True, read=True),
        "u-2": Progress(failed=True),
    },
    status=Status.FAILED,
    reached=(1, 2),
    published_version=1,
    rev=4,
)


def test_a_full_state_round_trips() -> None:
    """from_document(to_document(state)) is the state at the written revision."""
    doc = to_document(FULL, 5, "writer-a")

    assert replace(FULL, rev=5) == from_document(doc, FULL.published_version)


def test_a_placeholder_holding_receipts_round_trips() -> None:
    """A state without submission that names held receipts round-trips, as
    does one with receipts counted (written before receipts were held)."""
    state = MessageState(
        id="m-2",
        conversation_id="c-1",
        progress={"u-2": Progress(delivered=True)},
        held=("t.chat.receipts.v1:0:7", "t.chat.receipts.v1:1:3"),
    )

    assert replace(state, rev=1) == from_document(to_document(state, 1, "w"))


def test_empty_content_still_counts_as_a_submission() -> None:
    """A submission with empty content is not mistaken for no submission."""
    assert FULL.submission is not None
    state = replace(FULL, submission=replace(FULL.submission, content=""))

    doc = to_document(state, 5, "w")

    assert replace(state, rev=5) == from_document(doc, state.published_version)


def test_document_keys_and_derived_fields() -> None:
    """The document is keyed by the message id and records version and writer."""
    doc = to_document(FULL, 5, "writer-a")

    assert {
        "_id": "m-1",
        "conversation_id": "c-1",
        "status": "FAILED",
        "version": 2,
        "recipients": ["u-2", "u-3"],
        "reached": [1, 2],
        "held": [],
        "rev": 5,
        "writer": "writer-a",
        "sender_id": "u-1",
        "type": "ACTION",
        "timestamp": AT,
        "reply_to_id": "m-0",
    } == {k: v for k, v in doc.items() if k not in ("content", "progress")}


def test_the_published_version_is_not_part_of_the_message_document() -> None:
    """Only the enrichment worker records what is published, elsewhere."""
    assert 0 == from_document(to_document(FULL, 5, "w")).published_version
    assert "published_version" not in to_document(FULL, 5, "w")


def test_progress_is_stored_as_a_list_sorted_by_recipient() -> None:
    """Progress becomes a list of recipient records, in recipient order."""
    assert [
        {"recipient_id": "u-2", "delivered": False, "read": False, "failed": True},
        {"recipient_id": "u-3", "delivered": True, "read": True, "failed": False},
    ] == to_document(FULL, 5, "w")["progress"]


def test_content_is_stored_unchanged() -> None:
    """Non-ASCII content is stored as the same string."""
    assert "héllo \N{GRINNING FACE}" == to_document(FULL, 5, "w")["content"]
