"""Unit tests of contracts.status: the lattice, the roll-up and Progress."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import Progress, Status, join, roll_up

STATUSES = st.sampled_from(list(Status))
# The Progress values Courier can reach: read is never set without delivered.
PROGRESS = st.builds(
    lambda delivered, read, failed: Progress(
        delivered=delivered or read, read=read, failed=failed
    ),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)

DELIVERED = Progress(delivered=True)
READ = Progress(delivered=True, read=True)
FAILED = Progress(failed=True)


def test_heights_follow_the_chain() -> None:
    """PENDING < SENT < FAILED < DELIVERED < READ, heights 0 to 4."""
    assert [0, 1, 2, 3, 4] == [
        s.height
        for s in (
            Status.PENDING,
            Status.SENT,
            Status.FAILED,
            Status.DELIVERED,
            Status.READ,
        )
    ]


def test_statuses_travel_as_upper_case_names() -> None:
    """Each status's value is its upper-case name."""
    assert ["PENDING", "SENT", "FAILED", "DELIVERED", "READ"] == [
        s.value for s in Status
    ]


@given(STATUSES, STATUSES)
def test_join_is_the_higher_status(a: Status, b: Status) -> None:
    """join picks the status of greater height."""
    assert max(a.height, b.height) == join(a, b).height
    assert join(a, b) in (a, b)


@given(STATUSES, STATUSES)
def test_join_is_commutative(a: Status, b: Status) -> None:
    """join(a, b) == join(b, a)."""
    assert join(a, b) == join(b, a)


@given(STATUSES, STATUSES, STATUSES)
def test_join_is_associative(a: Status, b: Status, c: Status) -> None:
    """join(join(a, b), c) == join(a, join(b, c))."""
    assert join(join(a, b), c) == join(a, join(b, c))


@given(STATUSES)
def test_join_is_idempotent(a: Status) -> None:
    """join(a, a) == a."""
    assert a == join(a, a)


def test_failed_never_replaces_delivered_or_read() -> None:
    """FAILED joined onto DELIVERED or READ leaves them as they are."""
    assert Status.DELIVERED == join(Status.DELIVERED, Status.FAILED)
    assert Status.READ == join(Status.FAILED, Status.READ)


def test_no_message_is_pending() -> None:
    """Without the message itself the status is PENDING, whatever receipts say."""
    assert Status.PENDING == roll_up(
        has_message=False, recipients=["u-2"], progress={"u-2": READ}
    )


def test_unknown_recipients_stay_sent() -> None:
    """While the conversation is unknown (recipients None) the message is SENT."""
    assert Status.SENT == roll_up(
        has_message=True, recipients=None, progress={"u-2": READ}
    )


def test_no_recipients_stay_sent() -> None:
    """A conversation with nobody but the sender keeps the message SENT."""
    assert Status.SENT == roll_up(has_message=True, recipients=[], progress={})


def test_no_reports_is_sent() -> None:
    """Known recipients that reported nothing leave the message SENT."""
    assert Status.SENT == roll_up(
        has_message=True, recipients=["u-2", "u-3"], progress={}
    )


def test_all_read_is_read() -> None:
    """Every recipient has read it: READ."""
    assert Status.READ == roll_up(
        has_message=True, recipients=["u-2", "u-3"], progress={"u-2": READ, "u-3": READ}
    )


def test_all_delivered_is_delivered() -> None:
    """Every recipient has it, not all read: DELIVERED."""
    assert Status.DELIVERED == roll_up(
        has_message=True,
        recipients=["u-2", "u-3"],
        progress={"u-2": READ, "u-3": DELIVERED},
    )


def test_some_delivered_is_still_sent() -> None:
    """Delivery to only some recipients does not make a message DELIVERED."""
    assert Status.SENT == roll_up(
        has_message=True, recipients=["u-2", "u-3"], progress={"u-2": READ}
    )


def test_a_failure_before_full_delivery_is_failed() -> None:
    """Any recipient failed and not everyone has it: FAILED."""
    assert Status.FAILED == roll_up(
        has_message=True,
        recipients=["u-2", "u-3"],
        progress={"u-2": READ, "u-3": FAILED},
    )


def test_delivered_beats_failed() -> None:
    """Once every recipient has it, an earlier failure report is stale."""
    assert Status.DELIVERED == roll_up(
        has_message=True,
        recipients=["u-2", "u-3"],
        progress={"u-2": FAILED.merge(DELIVERED), "u-3": DELIVERED},
    )


def test_read_beats_failed() -> None:
    """Read by everyone is READ even where a failure was reported first."""
    assert Status.READ == roll_up(
        has_message=True, recipients=["u-2"], progress={"u-2": FAILED.merge(READ)}
    )


def test_progress_of_non_recipients_is_ignored() -> None:
    """A report from someone outside the recipients does not count."""
    assert Status.SENT == roll_up(
        has_message=True, recipients=["u-2"], progress={"u-9": READ}
    )


@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), PROGRESS),
    st.sampled_from(["a", "b", "c"]),
    PROGRESS,
)
def test_roll_up_never_falls_when_progress_grows(
    progress: dict[str, Progress], who: str, report: Progress
) -> None:
    """Merging one more report into any recipient never lowers the roll-up."""
    recipients = ["a", "b", "c"]
    before = roll_up(has_message=True, recipients=recipients, progress=progress)
    grown = {**progress, who: progress.get(who, Progress()).merge(report)}
    after = roll_up(has_message=True, recipients=recipients, progress=grown)

    assert after == join(before, after)


@given(PROGRESS, PROGRESS)
def test_merge_never_forgets_a_fact(a: Progress, b: Progress) -> None:
    """Every fact true of either input is true of the merge."""
    merged = a.merge(b)

    for side in (a, b):
        assert (True, True, True) == (
            merged.delivered >= side.delivered,
            merged.read >= side.read,
            merged.failed >= side.failed,
        )


@given(PROGRESS)
def test_merge_is_idempotent(a: Progress) -> None:
    """Merging a report with itself changes nothing."""
    assert a == a.merge(a)


@given(PROGRESS, PROGRESS)
def test_merge_is_commutative(a: Progress, b: Progress) -> None:
    """The order of two reports does not matter."""
    assert a.merge(b) == b.merge(a)


@given(PROGRESS, PROGRESS, PROGRESS)
def test_merge_is_associative(a: Progress, b: Progress, c: Progress) -> None:
    """Grouping of reports does not matter."""
    assert a.merge(b).merge(c) == a.merge(b.merge(c))


@pytest.mark.parametrize(
    "read", [Progress(read=True), Progress(delivered=True, read=True)]
)
def test_read_implies_delivered(read: Progress) -> None:
    """Merging a read report marks the recipient delivered too."""
    assert Progress(delivered=True, read=True) == Progress().merge(read)
    assert Progress(delivered=True, read=True) == read.merge(Progress())


def test_failed_stays_true_after_delivery() -> None:
    """Ever failed is a fact that stays true once delivered."""
    assert Progress(delivered=True, failed=True) == FAILED.merge(DELIVERED)
