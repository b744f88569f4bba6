"""Unit tests of workers.supervisor: exit codes and the restart bound."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_child_does_not_outlive_a_parent_killed_with_sigkill() -> None:
    """A parent that is SIGKILLed passes nothing on; the kernel still ends
    the child it started with die_with_parent."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "from workers.supervisor import die_with_parent\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; "
            "time.sleep(60)'], preexec_fn=die_with_parent)\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _alive(child)

    parent.kill()
    parent.wait(10)
    parent.stdout.close()

    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, reaped by no one yet, does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
