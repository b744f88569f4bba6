"""``courier run --processes N``: start N worker processes and keep them running.

A child that dies while no shutdown was asked for is logged
(``process.child_died``) and started again on its own HTTP port; more than
:data:`MAX_RESTARTS` restarts within :data:`RESTART_WINDOW_S` means it cannot
stay up (a bad setting, a store that refuses it), so every child is stopped
and the parent exits non-zero. SIGTERM and SIGINT are passed on to the
children, and the parent's exit code says whether every one ended cleanly.
On Linux a child is also sent SIGTERM when the parent dies without passing a
signal on (SIGKILL, a crash), so no worker outlives its supervisor.
"""

from __future__ import annotations

import collections
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence

import structlog

log = structlog.get_logger("courier.supervisor")

MAX_RESTARTS = 5
"""Restarts allowed within :data:`RESTART_WINDOW_S` before giving up."""
RESTART_WINDOW_S = 60.0
POLL_S = 0.2
STOP_WAIT_S = 60.0
"""How long giving up waits for the other children before it kills them."""


PR_SET_PDEATHSIG = 1
"""prctl(2): the signal a process gets when its parent ends."""


def die_with_parent() -> None:
    """For ``preexec_fn``: have the kernel SIGTERM this child when its
    parent dies, however it dies. Linux only; elsewhere it does nothing."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request took
        os.kill(os.getpid(), signal.SIGTERM)


class RestartsExhausted(Exception):
    """A child kept dying: the supervisor stopped every child."""


def exit_code(codes: Iterable[int]) -> int:
    """The parent's exit code for its children's return codes.

    0 only if every child returned 0. A child ended by a signal (a negative
    code from :mod:`subprocess`) counts as ``128 + signal``, as a shell
    reports it, so that a killed child is never read as success.
    """
    worst = 0
    for code in codes:
        code = 128 - code if code < 0 else code
        worst = max(worst, code)

    return worst


class Supervisor:
    """The children of one ``courier run WORKER --processes N``."""

    def __init__(self, worker: str, ports: Sequence[int]) -> None:
        self.worker = worker
        self.ports = list(ports)
        self.children: list[subprocess.Popen[bytes]] = []
        self.stopping = False
        self.restarts: collections.deque[float] = collections.deque()

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "run", self.worker],
            env={**os.environ, "COURIER_HTTP_PORT": str(port)},
            preexec_fn=die_with_parent,
        )
        log.info("process.child_started", pid=child.pid, http_port=port)

        return child

    def _forward(self, signum: int, _frame: object) -> None:
        self.stopping = True
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signum)

    def _restart(self, index: int, code: int) -> None:
        child = self.children[index]
        log.error(
            "process.child_died",
            pid=child.pid,
            code=code,
            http_port=self.ports[index],
        )
        now = time.monotonic()
        while self.restarts and now - self.restarts[0] > RESTART_WINDOW_S:
            self.restarts.popleft()
        if len(self.restarts) >= MAX_RESTARTS:
            raise RestartsExhausted(
                f"worker processes died {len(self.restarts) + 1} times within "
                f"{RESTART_WINDOW_S:g} s (the last, pid {child.pid}, with code "
                f"{code}); stopped them all. See the log above for why."
            )
        self.restarts.append(now)
        self.children[index] = self._spawn(self.ports[index])

    def _stop_all(self) -> None:
        self.stopping = True
        for child in self.children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + STOP_WAIT_S
        for child in self.children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    def run(self) -> int:
        """Supervise until every child ended; return the exit code."""
        before = {
            signum: signal.signal(signum, self._forward)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        self.children = [self._spawn(port) for port in self.ports]
        try:
            while True:
                codes = [child.poll() for child in self.children]
                if self.stopping:
                    if all(code is not None for code in codes):
                        break
                else:
                    for index, code in enumerate(codes):
                        if code is not None:
                            self._restart(index, code)
                time.sleep(POLL_S)
        except RestartsExhausted:
            self._stop_all()
            raise
        finally:
            for signum, handler in before.items():
                signal.signal(signum, handler)
        final = [child.returncode for child in self.children]
        if exit_code(final):
            log.error(
                "process.children_failed",
                codes={c.pid: c.returncode for c in self.children},
            )

        return exit_code(final)
