"""Killed workers, a stopped store and a restarted broker: nothing lost or doubled."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path

import pytest

from deploy.local import services
from storage import MessageRepository, Store
from tests.integration.harness import (
    Out,
    WorkerProcess,
    committed_lag,
    eventually,
    publish,
    read_all,
)
from tests.integration.test_guarantees import conversation, message, receipt, user
from workers.kafka import ensure_topics
from workers.settings import Settings

MEMBERS = ["u-1", "u-2", "u-3"]


def restart_broker() -> None:
    """Stop the local broker, make sure it is down, and start it again."""
    services.stop("kafka")
    try:
        asyncio.run(services._kafka_probe_within(services.kafka_bootstrap(), 2))
    except Exception:
        services.start("kafka")
        return
    pytest.fail(
        "Kafka still answers after `stop`: it was not started by this checkout "
        "(`make up` here), so this fault test cannot control it.",
        pytrace=False,
    )


def stop_store() -> None:
    """Stop the local store, and make sure it really is down."""
    services.stop("ferretdb")
    try:
        services.mongo_probe(services.mongodb_uri(), timeout=1)
    except Exception:
        return
    pytest.fail(
        "The store still answers after `stop`: it was not started by this "
        "checkout (`make up` here), so this fault test cannot control it.",
        pytrace=False,
    )


async def seed_directory(settings: Settings, store: Store) -> None:
    t = settings.topics
    await publish(
        settings,
        [Out(t.users, m, user(m, m.upper())) for m in MEMBERS]
        + [Out(t.conversations, "c-1", conversation("c-1", MEMBERS))],
    )

    async def stored() -> bool:
        return await store.collection("conversations").count_documents({}) == 1

    await eventually(stored, 60, "the directory is stored")


def traffic(settings: Settings, count: int, first: int = 0) -> list[Out]:
    """Messages, each read by u-2 and delivered to u-3 (so: DELIVERED)."""
    t = settings.topics
    out = []
    for i in range(first, first + count):
        mid = f"m{i:04d}"
        out.append(Out(t.messages, "c-1", message(mid)))
        out.append(
            Out(t.receipts, "c-1", receipt(mid, "u-2", "READ", "2024-05-01T12:01:00Z"))
        )
        out.append(
            Out(
                t.receipts,
                "c-1",
                receipt(mid, "u-3", "DELIVERED", "2024-05-01T12:01:00Z"),
            )
        )
    return out


async def all_delivered(store: Store, count: int) -> bool:
    return (
        await store.collection("messages").count_documents({"status": "DELIVERED"})
        == count
    )


async def delivered(
    settings: Settings, store: Store, count: int
) -> tuple[set[str], list[bytes]]:
    """Wait until all ``count`` messages are DELIVERED and their DTOs are out."""
    await eventually(
        lambda: all_delivered(store, count), 180, f"all {count} are DELIVERED"
    )
    ids = {f"m{i:04d}" for i in range(count)}
    dtos = await read_all(
        settings,
        settings.topics.client_messages,
        lambda got: (
            {json.loads(r.value)["id"] for r in got if b"DELIVERED" in r.value} >= ids
        ),
        timeout=120,
    )

    return ids, [r.value for r in dtos]


def check_dtos(raw: list[bytes], ids: set[str]) -> None:
    """Every message's final DTO is out; a version never has two contents."""
    by_version: dict[tuple[str, int], set[bytes]] = defaultdict(set)
    final: dict[str, tuple[int, str]] = {}
    for value in raw:
        dto = json.loads(value)
        by_version[(dto["id"], dto["version"])].add(value)
        final[dto["id"]] = max(
            final.get(dto["id"], (0, "")), (dto["version"], dto["status"])
        )
    assert ids == set(final)
    assert {1} == {len(contents) for contents in by_version.values()}
    assert {"DELIVERED"} == {status for _, status in final.values()}


async def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(
    tmp_path: Path, settings: Settings, store: Store
) -> None:
    """Case 3: SIGKILL during a batch; the restarted worker finishes the job."""
    settings = settings.model_copy(update={"batch_max_records": 40})
    await ensure_topics(settings.kafka_bootstrap_servers, settings.topics, 2)
    log = tmp_path / "workers.log"
    first = WorkerProcess(settings, log)
    first.start()
    try:
        await seed_directory(settings, store)
        count = 400
        await publish(settings, traffic(settings, count))

        async def some_stored() -> bool:
            return await store.collection("messages").count_documents({}) >= 40

        await eventually(some_stored, 60, "the first batches are stored")
        first.kill()
    finally:
        first.stop()
    stored_at_kill = await store.collection("messages").count_documents({})
    assert stored_at_kill < count, "the kill came too late to test anything"

    second = WorkerProcess(settings, log)
    second.start()
    try:
        ids, dtos = await delivered(settings, store, count)
    finally:
        assert 0 == second.stop()
    assert count == await store.collection("messages").count_documents({})
    check_dtos(dtos, ids)
    assert [] == await MessageRepository(store).owed()


async def test_a_stopped_store_holds_the_offset_until_the_write_lands(
    tmp_path: Path, settings: Settings, store: Store
) -> None:
    """Case 2: while the store is down the committed offset stays before m10."""
    settings = settings.model_copy(update={"partitions": 1})
    t = settings.topics
    await ensure_topics(settings.kafka_bootstrap_servers, t, 1)
    worker = WorkerProcess(settings, tmp_path / "workers.log")
    worker.start()
    try:
        await seed_directory(settings, store)
        await publish(settings, [Out(t.messages, "c-1", message("m09"))])

        async def m09_stored() -> bool:
            return await store.collection("messages").count_documents({}) == 1

        await eventually(m09_stored, 60, "m09 is stored before the outage")
        await asyncio.to_thread(stop_store)
        try:
            await publish(
                settings,
                [
                    Out(t.messages, "c-1", message("m10")),
                    Out(t.messages, "c-1", message("m11")),
                ],
            )
            for _ in range(4):
                await asyncio.sleep(1)
                lag = await committed_lag(
                    settings, settings.group("status"), t.messages
                )
                assert 2 == lag, "an offset was committed while the store was down"
        finally:
            await asyncio.to_thread(services.start, "ferretdb")

        async def both_stored() -> bool:
            return await store.collection("messages").count_documents({}) == 3

        await eventually(both_stored, 90, "m10 and m11 are stored after the outage")

        async def caught_up() -> bool:
            return (
                await committed_lag(settings, settings.group("status"), t.messages) == 0
            )

        await eventually(caught_up, 60, "the lag returns to zero")
    finally:
        assert 0 == worker.stop()


async def test_workers_ride_out_a_broker_restart(
    tmp_path: Path, settings: Settings, store: Store
) -> None:
    """Case 10: Kafka restarts under running workers; they reconnect, lose nothing."""
    await ensure_topics(settings.kafka_bootstrap_servers, settings.topics, 2)
    worker = WorkerProcess(settings, tmp_path / "workers.log")
    worker.start()
    try:
        await seed_directory(settings, store)
        await publish(settings, traffic(settings, 50))
        await asyncio.to_thread(restart_broker)
        await publish(settings, traffic(settings, 50, first=50))
        ids, dtos = await delivered(settings, store, 100)
    finally:
        assert 0 == worker.stop()
    check_dtos(dtos, ids)
