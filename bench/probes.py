"""What the benchmark watches: worker processes, consumer groups, the DTOs.

CPU and memory come from ``/proc`` of the worker processes themselves (and
their children, for ``--processes N``), so the broker, the store and the
benchmark's own producer and consumer are never counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from workers.kafka import partitions_of
from workers.settings import Settings
from workers.supervisor import die_with_parent

REPO = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    kids = [int(k) for k in text.split()]

    return kids + [g for k in kids for g in _children(k)]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process, in seconds."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()

    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mb(pid: int) -> float:
    """The most resident memory the process has had (VmHWM), in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

    return 0.0


def env_for(settings: Settings) -> dict[str, str]:
    """The settings as ``COURIER_*`` variables for a worker subprocess."""
    env = {**os.environ}
    for name, value in settings.model_dump().items():
        text = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        env[f"COURIER_{name.upper()}"] = str(text)

    return env


class Workers:
    """One worker command as a subprocess, logging JSON lines to a file."""

    def __init__(self, settings: Settings, argv: Sequence[str], log: Path) -> None:
        self.settings = settings
        self.argv = list(argv)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.seen: set[int] = set()
        self._peak = 0.0

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", *self.argv],
                env=env_for(self.settings),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                # A bench stopped by any means takes its workers with it.
                preexec_fn=die_with_parent,
            )

    def pids(self) -> list[int]:
        assert self.proc is not None
        found = [self.proc.pid, *_children(self.proc.pid)]
        self.seen.update(found)

        return found

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_s(self) -> float:
        return sum(cpu_seconds(p) for p in self.pids())

    def peak_rss_mb(self) -> float:
        """The largest peak RSS of any one worker process so far."""
        self._peak = max([self._peak, *(peak_rss_mb(p) for p in self.pids())])

        return self._peak

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


async def wait_joined(
    settings: Settings, groups: Sequence[str], members: int, within_s: float
) -> None:
    """Wait until every group is stable with ``members`` members."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    deadline = time.monotonic() + within_s
    try:
        while time.monotonic() < deadline:
            try:
                # One group a request: aiokafka cannot decode some answers
                # that describe several at once.
                states = [
                    (await admin.describe_consumer_groups([g]))[0].groups[0]
                    for g in groups
                ]
            except (KafkaError, ValueError):
                # A group's coordinator is not known until the group exists.
                await asyncio.sleep(0.1)
                continue
            if all(s[2] == "Stable" and len(s[5]) == members for s in states):
                return
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    raise TimeoutError(f"groups {', '.join(groups)} did not join within {within_s} s")


class Lag:
    """Records not yet committed by the given groups on their topics."""

    def __init__(self, settings: Settings, watch: dict[str, list[str]]) -> None:
        self.settings = settings
        self.watch = watch
        self.tps: dict[str, list[TopicPartition]] = {}
        self.admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers
        )
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None
        )

    async def __aenter__(self) -> Lag:
        await self.admin.start()
        await self.consumer.start()
        for group, topics in self.watch.items():
            self.tps[group] = [
                tp
                for t in topics
                for tp in await partitions_of(self.settings.kafka_bootstrap_servers, t)
            ]

        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def total(self) -> int:
        lag = 0
        for group, tps in self.tps.items():
            committed = await self.admin.list_consumer_group_offsets(group)
            ends = await self.consumer.end_offsets(tps)
            for tp in tps:
                meta = committed.get(tp)
                done = meta.offset if meta is not None and meta.offset >= 0 else 0
                lag += ends[tp] - done

        return lag


@dataclass
class Dtos:
    """Every DTO on a client topic, with its arrival time, read from the start."""

    settings: Settings
    final: dict[str, int] = field(default_factory=dict)
    """The version each message must end at; grows as phases publish."""
    arrivals: dict[tuple[str, int], float] = field(default_factory=dict)
    versions: dict[str, list[int]] = field(default_factory=dict)
    firsts: dict[str, list[str]] = field(default_factory=dict)
    """Per conversation, its messages in the order their first DTO came."""
    contents: dict[tuple[str, int], bytes] = field(default_factory=dict)
    two_contents: int = 0
    done: int = 0
    total: int = 0
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            self.settings.topics.client_messages,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        self._task = asyncio.create_task(self._read(consumer))

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=100, max_records=5000)
                now = time.time()
                for records in batch.values():
                    for record in records:
                        self._take(record.value, now)
        finally:
            await consumer.stop()

    def _take(self, value: bytes, now: float) -> None:
        dto = json.loads(value)
        mid, version = dto["id"], dto["version"]
        self.total += 1
        key = (mid, version)
        # The timestamp and names are the only parts a repeat may change.
        body = json.dumps([dto["status"], dto["content"]]).encode()
        held = self.contents.get(key)
        if held is not None:
            self.two_contents += held != body
            return
        self.contents[key] = body
        self.arrivals[key] = now
        seen = self.versions.setdefault(mid, [])
        if not seen:
            self.firsts.setdefault(dto["conversation"]["id"], []).append(mid)
        seen.append(version)
        if version == self.final.get(mid):
            self.done += 1

    def expect(self, final: dict[str, int]) -> None:
        for mid, version in final.items():
            self.final[mid] = version
            if version in self.versions.get(mid, ()):
                self.done += 1

    async def wait(self, deadline: float, alive: Workers | None = None) -> bool:
        """Wait until every expected final DTO has come; false at the deadline."""
        while time.monotonic() < deadline:
            if self.done >= len(self.final):
                return True
            if alive is not None and not alive.alive():
                raise RuntimeError(f"the workers exited; see {alive.log}")
            await asyncio.sleep(0.05)

        return self.done >= len(self.final)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
