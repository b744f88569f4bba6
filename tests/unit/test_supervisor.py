"""Unit tests of workers.supervisor: exit codes and the restart bound."""

from __future__ import annotations

import signal

import pytest

from workers import supervisor
from workers.supervisor import MAX_RESTARTS, RestartsExhausted, Supervisor, exit_code


def test_every_child_clean_is_success() -> None:
    """Only all zeros make a zero."""
    assert 0 == exit_code([0, 0, 0])


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ([0, -signal.SIGKILL], 128 + signal.SIGKILL),
        ([-signal.SIGTERM, 0], 128 + signal.SIGTERM),
        ([0, 1], 1),
        ([2, -signal.SIGKILL, 1], 128 + signal.SIGKILL),
    ],
)
def test_a_child_killed_or_failing_makes_the_parent_fail(
    codes: list[int], expected: int
) -> None:
    """A signal's negative code is never hidden by a max() over the others."""
    assert expected == exit_code(codes)


def test_a_child_that_keeps_dying_stops_after_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Real children that exit at once are restarted, then given up on."""
    monkeypatch.setattr(supervisor, "POLL_S", 0.05)
    # `courier run statuss` exits 1 at once: the name is checked first.
    watched = Supervisor("statuss", [0])

    with pytest.raises(RestartsExhausted, match=r"died 6 times within 60 s"):
        watched.run()

    assert MAX_RESTARTS == len(watched.restarts)
    assert [1] == [child.returncode for child in watched.children]
    assert watched._forward != signal.getsignal(signal.SIGTERM)
