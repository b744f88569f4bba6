"""Horizontal scaling: worker processes in one group share the partitions."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from storage import Store
from tests.integration.harness import (
    Out,
    Pipeline,
    WorkerProcess,
    eventually,
    publish,
)
from tests.integration.test_guarantees import conversation, message, user
from tests.net import free_port, get
from workers.kafka import ensure_topics
from workers.settings import Settings


async def test_two_processes_share_the_work_and_stop_cleanly(
    tmp_path: Path, settings: Settings, store: Store
) -> None:
    """`courier run all --processes 2`: every message stored once; exit 0."""
    t = settings.topics
    await ensure_topics(settings.kafka_bootstrap_servers, t, settings.partitions)
    workers = WorkerProcess(
        settings, tmp_path / "workers.log", "all", "--processes", "2"
    )
    workers.start()
    try:

        async def both_joined() -> bool:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=settings.kafka_bootstrap_servers
            )
            await admin.start()
            try:
                groups = await admin.describe_consumer_groups(
                    [settings.group("status")]
                )
            finally:
                await admin.close()
            group = groups[0].groups[0]
            return group[2] == "Stable" and len(group[5]) == 2

        await eventually(both_joined, 60, "both processes joined the status group")
        rooms = [f"c-{i}" for i in range(8)]
        await publish(
            settings,
            [Out(t.users, "u-1", user("u-1", "Ada"))]
            + [Out(t.conversations, c, conversation(c, ["u-1", "u-2"])) for c in rooms],
        )

        async def directory_stored() -> bool:
            count = await store.collection("conversations").count_documents({})
            return count == len(rooms)

        await eventually(directory_stored, 60, "the conversations are stored")
        await publish(
            settings,
            [
                Out(t.messages, c, message(f"{c}-m{i}", cid=c))
                for c in rooms
                for i in range(25)
            ],
        )

        async def all_stored() -> bool:
            count = await store.collection("messages").count_documents({})
            return count == 25 * len(rooms)

        await eventually(all_stored, 90, "every message is stored")
    finally:
        code = await asyncio.to_thread(workers.stop, 60)
    assert 0 == code
    lines = [json.loads(x) for x in workers.output().splitlines() if x.startswith("{")]
    assert 2 == sum(1 for x in lines if x.get("event") == "process.started")
    assert 2 == sum(1 for x in lines if x.get("event") == "process.stopped")
    # Both processes took status batches: the partitions were shared.
    busy = {
        x["process"]
        for x in lines
        if x.get("event") == "batch.done" and x.get("worker") == "status"
    }
    assert 2 == len(busy)


def _free_pair() -> int:
    """A port such that it and the next one are free now."""
    while True:
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


async def test_a_killed_process_is_restarted_on_its_port(
    tmp_path: Path, settings: Settings, store: Store
) -> None:
    """kill -9 of one of two children: logged, restarted, and SIGTERM exits 0."""
    base = _free_pair()
    settings = settings.model_copy(update={"http_port": base})
    workers = WorkerProcess(
        settings, tmp_path / "workers.log", "all", "--processes", "2"
    )

    def events(name: str) -> list[dict[str, Any]]:
        lines = workers.output().splitlines()
        found = [json.loads(x) for x in lines if x.startswith("{")]
        return [x for x in found if x.get("event") == name]

    async def healthy(port: int) -> bool:
        status, _ = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/healthz")
        return status == 200

    async def both_healthy() -> bool:
        return await healthy(base) and await healthy(base + 1)

    async def restarted_healthy() -> bool:
        return await healthy(base + 1)

    workers.start()
    try:
        await eventually(both_healthy, 90, "/healthz on both ports")
        (victim,) = [
            x for x in events("process.child_started") if x["http_port"] == base + 1
        ]
        os.kill(victim["pid"], signal.SIGKILL)

        async def restarted() -> bool:
            started = events("process.child_started")
            return sum(1 for x in started if x["http_port"] == base + 1) == 2

        await eventually(restarted, 30, "the killed child was started again")
        (died,) = events("process.child_died")
        assert (victim["pid"], -signal.SIGKILL, base + 1) == (
            died["pid"],
            died["code"],
            died["http_port"],
        )
        await eventually(restarted_healthy, 90, "/healthz after the restart")
    finally:
        code = await asyncio.to_thread(workers.stop, 60)

    assert 0 == code
    # The killed one never got to log its stop; its replacement did.
    assert 2 == len(events("process.stopped"))


async def test_a_message_and_its_receipts_go_to_one_status_process(
    settings: Settings, store: Store
) -> None:
    """Two status processes share three partitions of each of their two
    topics. Each gets the same partition numbers of both, so a message and
    its receipts (one key) have one writer; round-robin would deal
    messages-0, messages-2 and receipts-1 to one of them."""
    settings = settings.model_copy(update={"partitions": 3})
    t = settings.topics
    await ensure_topics(settings.kafka_bootstrap_servers, t, settings.partitions)

    def owned(p: Pipeline) -> dict[str, set[int]]:
        # FastStream keeps the subscriber's aiokafka consumer as .consumer.
        consumer = getattr(p.process.broker.subscribers[0], "consumer", None)
        got: dict[str, set[int]] = {t.messages: set(), t.receipts: set()}
        for tp in consumer.assignment() if consumer is not None else ():
            got[tp.topic].add(tp.partition)
        return got

    async with (
        Pipeline(settings, ["status"]) as one,
        Pipeline(settings, ["status"]) as two,
    ):

        async def settled() -> bool:
            a, b = owned(one), owned(two)
            return all(len(a[x]) + len(b[x]) == 3 and a[x] and b[x] for x in a)

        await eventually(settled, 60, "both processes own partitions of both topics")
        shares = [owned(one), owned(two)]
    for share in shares:
        assert share[t.messages] == share[t.receipts]
