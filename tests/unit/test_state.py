"""Unit tests of storage.state: any order, any duplication, one final state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import (
    MessageSubmitted,
    MessageType,
    Progress,
    ReceiptReported,
    ReceiptStatus,
    Status,
)
from storage.state import (
    MessageState,
    Submission,
    apply_receipt,
    apply_submitted,
    new_state,
)

Event = MessageSubmitted | ReceiptReported

SENDER = "u-s"
MESSAGE_ID = "m-1"
CONVERSATION_ID = "c-1"
NOON = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
RECIPIENTS = ("u-1", "u-2", "u-3", "u-4")


def _submitted(content: str = "hi", event_id: str = "e-sub") -> MessageSubmitted:
    return MessageSubmitted(
        event_id=event_id,
        id=MESSAGE_ID,
        sender_id=SENDER,
        conversation_id=CONVERSATION_ID,
        content=content,
        type=MessageType.TEXT,
        timestamp=NOON,
    )


def _receipt(recipient: str, status: ReceiptStatus, second: int = 1) -> ReceiptReported:
    return ReceiptReported(
        event_id=f"e-{recipient}-{status.value}-{second}",
        message_id=MESSAGE_ID,
        conversation_id=CONVERSATION_ID,
        recipient_id=recipient,
        status=status,
        timestamp=NOON + timedelta(seconds=second),
    )


SUBMITTED = _submitted()
RECEIPTS = {(r, s): _receipt(r, s) for r in RECIPIENTS for s in ReceiptStatus}


def _steps(
    events: Sequence[Event], participants: tuple[str, ...]
) -> list[MessageState]:
    """Every state along one ordering, the empty state first."""
    states = [new_state(MESSAGE_ID, CONVERSATION_ID)]
    for event in events:
        state = states[-1]
        if isinstance(event, MessageSubmitted):
            states.append(apply_submitted(state, event, participants))
        else:
            states.append(apply_receipt(state, event))
    return states


def _final(events: Sequence[Event], participants: tuple[str, ...]) -> MessageState:
    return _steps(events, participants)[-1]


def _core(
    state: MessageState,
) -> tuple[Submission | None, tuple[str, ...] | None, dict[str, Progress], Status, int]:
    return (
        state.submission,
        state.recipients,
        state.progress,
        state.status,
        state.version,
    )


def _published(state: MessageState) -> MessageState:
    """The state once every DTO it owes is confirmed on the client topic."""
    return replace(state, published_version=state.version)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[tuple[str, ...], list[Event]]:
    """Participants (sender + 1-4 recipients) and the submission plus receipts."""
    count = draw(st.integers(min_value=1, max_value=4))
    recipients = RECIPIENTS[:count]
    reports = draw(
        st.lists(
            st.tuples(st.sampled_from(recipients), st.sampled_from(ReceiptStatus)),
            max_size=10,
        )
    )
    participants = draw(st.permutations((SENDER, *recipients)))
    events: list[Event] = [SUBMITTED, *(RECEIPTS[report] for report in reports)]
    return tuple(participants), events


@st.composite
def reorderings(draw: st.DrawFn, events: list[Event]) -> list[Event]:
    """The same events in any order, each at least once, some repeated."""
    extra = draw(st.lists(st.sampled_from(events), max_size=len(events) + 2))
    return draw(st.permutations([*events, *extra]))


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.data())
def test_any_order_and_any_duplication_give_the_same_state(
    scenario: tuple[tuple[str, ...], list[Event]], data: st.DataObject
) -> None:
    """Permuted and repeated events end in the same submission..version."""
    participants, events = scenario
    reference = _final(events, participants)
    shuffled = _final(data.draw(reorderings(events)), participants)

    assert _core(reference) == _core(shuffled)


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.data())
def test_once_published_only_the_path_taken_depends_on_the_order(
    scenario: tuple[tuple[str, ...], list[Event]], data: st.DataObject
) -> None:
    """After every DTO is out nothing is owed, and only ``reached`` (the
    versions passed on the way) may differ between orders."""
    participants, events = scenario
    reference = _published(_final(events, participants))
    shuffled = _published(_final(data.draw(reorderings(events)), participants))

    assert () == reference.unpublished == shuffled.unpublished
    assert replace(reference, reached=()) == replace(shuffled, reached=())


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.data())
def test_status_never_decreases_along_any_ordering(
    scenario: tuple[tuple[str, ...], list[Event]], data: st.DataObject
) -> None:
    """Each step's status height is at least the previous step's."""
    participants, events = scenario
    heights = [
        s.status.height for s in _steps(data.draw(reorderings(events)), participants)
    ]

    assert sorted(heights) == heights


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.data())
def test_reached_holds_rising_positive_heights_ending_at_the_version(
    scenario: tuple[tuple[str, ...], list[Event]], data: st.DataObject
) -> None:
    """``reached`` lists heights > 0, strictly rising, the last one the version."""
    participants, events = scenario
    final = _final(data.draw(reorderings(events)), participants)

    assert final.status.height == final.version
    assert all(v > 0 for v in final.reached)
    assert sorted(set(final.reached)) == list(final.reached)
    assert final.version == final.reached[-1]
    assert final.reached == final.unpublished


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.data())
def test_final_status_is_the_roll_up_of_the_reports(
    scenario: tuple[tuple[str, ...], list[Event]], data: st.DataObject
) -> None:
    """READ if all read, DELIVERED if all have it, FAILED if any failed, else SENT."""
    participants, events = scenario
    recipients = [p for p in participants if p != SENDER]
    said = {
        (e.recipient_id, e.status) for e in events if isinstance(e, ReceiptReported)
    }
    read = {r for r in recipients if (r, ReceiptStatus.READ) in said}
    got = read | {r for r in recipients if (r, ReceiptStatus.DELIVERED) in said}
    failed = {r for r in recipients if (r, ReceiptStatus.FAILED) in said}
    if len(read) == len(recipients):
        expected = Status.READ
    elif len(got) == len(recipients):
        expected = Status.DELIVERED
    elif failed:
        expected = Status.FAILED
    else:
        expected = Status.SENT

    final = _final(data.draw(reorderings(events)), participants)

    assert expected == final.status
    assert tuple(sorted(recipients)) == final.recipients


def test_recipients_exclude_the_sender_and_are_sorted_once() -> None:
    """Recipients are the participants other than the sender, sorted, unique."""
    state = _final([SUBMITTED], ("u-2", SENDER, "u-1", "u-2"))

    assert ("u-1", "u-2") == state.recipients


def test_a_stored_message_without_reports_is_sent() -> None:
    """A submission alone makes the message SENT with version 1 owed."""
    state = _final([SUBMITTED], (SENDER, "u-1"))

    assert (Status.SENT, 1, (1,)) == (state.status, state.version, state.reached)


def test_receipts_before_the_message_stay_pending_and_owe_nothing() -> None:
    """Receipts for an unknown message are kept on a PENDING state, no DTO owed."""
    state = _final([RECEIPTS["u-1", ReceiptStatus.READ]], (SENDER, "u-1"))

    assert (Status.PENDING, 0, ()) == (state.status, state.version, state.reached)
    assert {"u-1": Progress(delivered=True, read=True)} == state.progress


def test_early_receipts_count_once_the_message_arrives() -> None:
    """A message whose receipts came first goes straight to their status."""
    state = _final([RECEIPTS["u-1", ReceiptStatus.READ], SUBMITTED], (SENDER, "u-1"))

    assert (Status.READ, (4,)) == (state.status, state.reached)


def test_a_late_resubmission_does_not_change_the_submission() -> None:
    """The first submission wins over a later one with the same id."""
    first = _final([SUBMITTED], (SENDER, "u-1"))
    later = _submitted(content="edited", event_id="e-sub-2")

    again = apply_submitted(first, later, (SENDER, "u-1", "u-2"))

    assert first == again
    assert again.submission is not None
    assert "hi" == again.submission.content


def test_a_duplicate_receipt_changes_nothing() -> None:
    """Applying the same receipt twice is the same as once."""
    once = _final(
        [SUBMITTED, RECEIPTS["u-1", ReceiptStatus.DELIVERED]], (SENDER, "u-1")
    )

    assert once == apply_receipt(once, RECEIPTS["u-1", ReceiptStatus.DELIVERED])


def test_failed_then_delivered_for_everyone_ends_delivered() -> None:
    """A failure report is superseded once every recipient has the message."""
    participants = (SENDER, "u-1", "u-2")
    events: list[Event] = [
        SUBMITTED,
        RECEIPTS["u-1", ReceiptStatus.FAILED],
        RECEIPTS["u-1", ReceiptStatus.DELIVERED],
        RECEIPTS["u-2", ReceiptStatus.DELIVERED],
    ]

    steps = _steps(events, participants)

    assert [
        Status.PENDING,
        Status.SENT,
        Status.FAILED,
        Status.FAILED,
        Status.DELIVERED,
    ] == [s.status for s in steps]
    assert (1, 2, 3) == steps[-1].reached


def test_failure_after_delivery_is_ignored() -> None:
    """FAILED arriving after DELIVERED does not take the status down."""
    participants = (SENDER, "u-1")
    events: list[Event] = [
        SUBMITTED,
        RECEIPTS["u-1", ReceiptStatus.DELIVERED],
        RECEIPTS["u-1", ReceiptStatus.FAILED],
    ]

    assert Status.DELIVERED == _final(events, participants).status


def test_late_sent_stage_event_after_read_keeps_read() -> None:
    """DELIVERED, READ, a late re-submission, DELIVERED again: READ throughout."""
    participants = (SENDER, "u-2")
    delivered = _receipt("u-2", ReceiptStatus.DELIVERED, second=2)
    events: list[Event] = [
        SUBMITTED,
        delivered,
        _receipt("u-2", ReceiptStatus.READ, second=5),
        _submitted(content="hi again", event_id="e-sub-late"),
        delivered,
    ]

    steps = _steps(events, participants)

    assert [0, 1, 3, 4, 4, 4] == [s.status.height for s in steps]
    assert (Status.READ, (1, 3, 4)) == (steps[-1].status, steps[-1].reached)
    assert steps[1].submission == steps[-1].submission


def test_unpublished_skips_versions_already_out() -> None:
    """Versions at or below published_version are no longer owed."""
    state = replace(
        new_state(MESSAGE_ID, CONVERSATION_ID),
        status=Status.READ,
        reached=(1, 3, 4),
        published_version=3,
    )

    assert (4,) == state.unpublished
