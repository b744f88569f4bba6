"""Tests for contracts.downstream."""

from __future__ import annotations

from contracts import (
    ConversationKind,
    ConversationSummary,
    MessageDTO,
    MessageType,
    Status,
    UserSummary,
)
from contracts.downstream import LatestVersions


def dto(mid: str, status: Status) -> MessageDTO:
    return MessageDTO(
        id=mid,
        version=status.height,
        sender=UserSummary(id="u-1", display_name="Ada"),
        conversation=ConversationSummary(
            id="c-1", title="#c", kind=ConversationKind.GROUP
        ),
        content="hi",
        type=MessageType.TEXT,
        status=status,
        timestamp="2024-05-01T12:00:00Z",  # type: ignore[arg-type]
    )


def test_repeats_and_stale_versions_are_dropped() -> None:
    """A repeat after a crash, or an older version, is not applied again."""
    seen = LatestVersions()
    stream = [
        dto("m1", Status.SENT),
        dto("m1", Status.SENT),
        dto("m1", Status.READ),
        dto("m1", Status.DELIVERED),
        dto("m2", Status.SENT),
    ]

    assert [True, False, True, False, True] == [seen.is_new(d) for d in stream]


def test_capacity_forgets_the_least_recently_seen_id() -> None:
    """Memory stays bounded; the oldest id is the one forgotten."""
    seen = LatestVersions(capacity=2)
    for mid in ("m1", "m2", "m3"):
        seen.is_new(dto(mid, Status.SENT))

    assert [True, False] == [
        seen.is_new(dto("m1", Status.SENT)),
        seen.is_new(dto("m3", Status.SENT)),
    ]
