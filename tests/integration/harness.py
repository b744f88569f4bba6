"""Helpers for integration tests: real Kafka, the real store, real workers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from pydantic import BaseModel

from contracts import encode
from storage import Store
from workers.app import build_app
from workers.kafka import group_lag
from workers.log import configure
from workers.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA = REPO_ROOT.parent / "shared" / "data"


def fresh_settings(**overrides: Any) -> Settings:
    """Settings with a topic prefix and database no other test uses."""
    run = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {
        "topic_prefix": f"t{run}.",
        "mongodb_database": f"test_{run}",
        "partitions": 2,
        "batch_timeout_ms": 10,
        "retry_initial_s": 0.05,
        "retry_max_s": 0.5,
        "record_attempts": 2,
        "park_sweep_s": 0.5,
        "shutdown_grace_s": 5.0,
        "log_format": "json",
        "http_port": 0,
    } | overrides

    return Settings(**values)


def env_of(settings: Settings) -> dict[str, str]:
    """The settings as COURIER_* variables, for worker subprocesses."""
    env = {**os.environ}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        text = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        env[f"COURIER_{name.upper()}"] = str(text)

    return env


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 30.0, what: str = ""
) -> None:
    """Poll ``check`` until it is true; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not true within {timeout:g} s: {what}")


@dataclass
class Out:
    topic: str
    key: str | None
    value: bytes | BaseModel | None
    headers: Sequence[tuple[str, bytes | None]] = ()


async def publish(settings: Settings, records: Sequence[Out]) -> None:
    """Publish in order and wait for every acknowledgement."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all"
    )
    await producer.start()
    try:
        futures = []
        for r in records:
            value = encode(r.value) if isinstance(r.value, BaseModel) else r.value
            futures.append(
                await producer.send(
                    r.topic,
                    value=value,
                    key=r.key.encode() if r.key is not None else None,
                    headers=list(r.headers),
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_all(
    settings: Settings,
    topic: str,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout: float = 30.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read ``topic`` from the start until ``until(records)`` holds."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    got: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                got.extend(records)
            if until(got):
                return got
    finally:
        await consumer.stop()
    raise AssertionError(
        f"{topic}: condition not met within {timeout:g} s ({len(got)} records read)"
    )


async def committed_lag(settings: Settings, group: str, topic: str) -> int:
    """End offsets minus the group's committed offsets, summed over partitions."""
    rows = await group_lag(settings.kafka_bootstrap_servers, group, topic)
    assert rows, f"{topic} has no partitions"

    return sum(r.lag for r in rows)


class Pipeline:
    """All three workers in this process, for the length of a test."""

    def __init__(self, settings: Settings, names: Sequence[str] | None = None) -> None:
        self.settings = settings
        self.app, self.process = build_app(
            settings, list(names or ("directory", "status", "enrichment"))
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Pipeline:
        configure(self.settings.log_level, self.settings.log_format)
        self.task = asyncio.create_task(self.app.run())
        await eventually(self._started, 30, "the workers started")

        return self

    async def _started(self) -> bool:
        if self.task is not None and self.task.done():
            self.task.result()
        return self.process.ctx is not None and all(
            s.running for s in self.process.broker.subscribers
        )

    async def __aexit__(self, *exc: object) -> None:
        self.app.exit()
        if self.task is not None:
            await asyncio.wait_for(self.task, 60)


class WorkerProcess:
    """``courier run NAME`` as a real subprocess, logging JSON to a file."""

    def __init__(
        self, settings: Settings, log: Path, name: str = "all", *args: str
    ) -> None:
        self.settings = settings
        self.log = log
        self.name = name
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "workers.cli", "run", self.name, *self.args],
                env=env_of(self.settings),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def store_for(settings: Settings) -> Store:
    return Store.connect(
        settings.mongodb_uri.get_secret_value(), settings.mongodb_database
    )
