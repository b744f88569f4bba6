"""Horizontal scaling: worker processes in one group share the partitions."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from storage import Store
from tests.integration.harness import Out, WorkerProcess, eventually, publish
from tests.integration.test_guarantees import conversation, message, user
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
