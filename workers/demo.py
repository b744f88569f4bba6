"""``make demo``: the real IRC logs through the whole pipeline, with a report."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from contracts import MessageDTO, encode
from storage import MessageRepository, ParkingRepository, Store
from workers.kafka import Outgoing, ensure_topics, group_lag, producing, topic_size
from workers.replay import Planned, irc_plan
from workers.settings import Settings


@dataclass
class Report:
    """What the demo saw, for the closing summary."""

    published: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, int] = field(default_factory=dict)
    dtos: int = 0
    distinct_dtos: int = 0
    dto_messages: int = 0
    dead_letters: int = 0
    parked: int = 0
    elapsed_s: float = 0.0
    sample: dict[str, Any] | None = None


async def publish(
    settings: Settings, records: list[Planned], progress: Any | None = None
) -> Counter[str]:
    """Publish records in order and wait for the broker's acks."""
    async with producing(settings.kafka_bootstrap_servers, "courier-replay") as out:
        for first in range(0, len(records), 1000):
            chunk = records[first : first + 1000]
            await out.send_all(
                [
                    Outgoing(
                        topic=item.topic,
                        key=item.key.encode(),
                        value=encode(item.event),
                    )
                    for item in chunk
                ]
            )
            if progress is not None:
                progress(len(chunk))

    return Counter(item.topic for item in records)


async def _drain_dtos(
    settings: Settings,
    store: Store,
    wanted: set[str],
    deadline: float,
    alive: Any,
) -> tuple[dict[str, dict[str, Any]], int, int]:
    """Read DTOs until every message's stored version has its DTO."""
    consumer = AIOKafkaConsumer(
        settings.topics.client_messages,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    latest: dict[str, dict[str, Any]] = {}
    seen: set[tuple[str, int]] = set()
    total = 0
    messages = store.collection("messages")
    repository = MessageRepository(store)
    parking = ParkingRepository(store)
    try:
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError(
                    "The workers exited early; see .local/log/demo-workers.log"
                )
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                for record in records:
                    dto = MessageDTO.model_validate_json(record.value)
                    total += 1
                    seen.add((dto.id, dto.version))
                    held = latest.get(dto.id)
                    if held is None or held["version"] < dto.version:
                        latest[dto.id] = json.loads(record.value)
            if (
                wanted <= latest.keys()
                and not await repository.owed()
                and not await _receipts_waiting(settings, parking)
            ):
                versions = messages.find({}, {"version": 1})
                stored = {d["_id"]: d["version"] async for d in versions}
                if all(latest[i]["version"] == stored.get(i) for i in wanted):
                    return latest, total, len(seen)
    finally:
        await consumer.stop()
    missing = len(wanted - latest.keys())
    raise TimeoutError(
        f"{missing} of {len(wanted)} messages still have no DTO; "
        "see the worker log for the reason"
    )


async def _receipts_waiting(settings: Settings, parking: ParkingRepository) -> bool:
    """Whether receipts that came before their message are still parked, or
    sent back to their topic and not consumed yet (checked in that order)."""
    if await parking.count():
        return True
    rows = await group_lag(
        settings.kafka_bootstrap_servers,
        settings.group("status"),
        settings.topics.receipts,
    )
    return any(r.lag for r in rows)


async def _wait_directory(
    store: Store, users: int, conversations: int, workers: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and workers.poll() is None:
        have_users = await store.collection("users").count_documents({})
        have_conversations = await store.collection("conversations").count_documents({})
        if have_users >= users and have_conversations >= conversations:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(
        "The directory was not stored in time; see .local/log/demo-workers.log"
    )


def _start_workers(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "COURIER_TOPIC_PREFIX": settings.topic_prefix,
        "COURIER_MONGODB_DATABASE": settings.mongodb_database,
        "COURIER_LOG_FORMAT": "json",
        "COURIER_HTTP_PORT": "0",
    }
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "run", "all"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def run_demo(
    base: Settings, logs: list[Path], log_path: Path, say: Any = print
) -> Report:
    """Replay ``logs`` through freshly named topics and database; return a report."""
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    settings = base.model_copy(
        update={
            "topic_prefix": f"demo-{stamp}.",
            "mongodb_database": f"courier_demo_{stamp}",
        }
    )
    plan = irc_plan(logs, settings.topics)
    say(
        f"Replaying {len(logs)} IRC logs: {plan.messages:,} messages, "
        f"{plan.users:,} users, {plan.user_updates} renames, "
        f"{plan.receipts:,} derived receipts."
    )
    say(
        f"Topics: {settings.topic_prefix}chat.*   database: {settings.mongodb_database}"
    )
    await ensure_topics(
        settings.kafka_bootstrap_servers, settings.topics, settings.partitions
    )
    started = time.monotonic()
    workers = _start_workers(settings, log_path)
    store = Store.connect(
        settings.mongodb_uri.get_secret_value(), settings.mongodb_database
    )
    report = Report()
    try:
        # Upstream creates users and conversations before they post, so the
        # directory goes first; traffic then never waits in the parking place.
        report.published = await publish(settings, plan.directory)
        await _wait_directory(store, plan.users, plan.conversations, workers)
        report.published += await publish(settings, plan.traffic)
        say(f"Published {sum(report.published.values()):,} events; waiting for DTOs...")
        latest, total, distinct = await _drain_dtos(
            settings,
            store,
            set(plan.message_ids),
            time.monotonic() + 600,
            lambda: workers.poll() is None,
        )
        report.elapsed_s = time.monotonic() - started
        report.dtos = total
        report.distinct_dtos = distinct
        report.dto_messages = len(latest)
        grouped = store.collection("messages").aggregate(
            [{"$group": {"_id": "$status", "n": {"$sum": 1}}}]
        )
        report.statuses = {d["_id"]: d["n"] async for d in await grouped}
        report.parked = await ParkingRepository(store).count()
        report.sample = max(
            latest.values(), key=lambda d: (d["reply_to_id"] is not None, d["version"])
        )
    finally:
        workers.send_signal(signal.SIGTERM)
        try:
            workers.wait(timeout=60)
        except subprocess.TimeoutExpired:
            workers.kill()
        await store.close()
    report.dead_letters = await topic_size(
        settings.kafka_bootstrap_servers, settings.topics.dlq
    )

    return report
