"""The message repository against the real store, no Kafka involved."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

from pymongo import AsyncMongoClient, monitoring
from pymongo.operations import UpdateOne

from contracts import MessageType, Progress, Status
from storage import MessageRepository, Store
from storage.mongo import FERRET_CHUNK, FERRET_WRITES_IN_FLIGHT, Document, WriteOp
from storage.state import MessageState, Submission
from workers.settings import Settings

ROUNDS = 40
HEIGHTS = (Status.SENT, Status.DELIVERED, Status.READ)


def submitted(index: int) -> MessageState:
    return MessageState(
        id=f"m-{index}",
        conversation_id="c-1",
        submission=Submission(
            sender_id="u-1",
            content=f"message {index}",
            type=MessageType.TEXT,
            timestamp=datetime(2024, 5, 1, tzinfo=UTC),
        ),
        recipients=("u-2",),
        status=Status.SENT,
        reached=(1,),
    )


async def test_status_writes_and_publish_marks_never_undo_each_other(
    store: Store,
) -> None:
    """A status write and a publish mark of one message, sent at the same
    moment, both land: each worker writes documents only it writes."""
    repo = MessageRepository(store)
    states = [submitted(i) for i in range(ROUNDS)]
    assert [] == (await repo.save_many(states, {s.id: (1,) for s in states})).conflicts

    for step, status in enumerate(HEIGHTS[1:], start=1):
        loaded = await repo.load_many(s.id for s in states)
        advanced = [
            replace(
                loaded[s.id],
                status=status,
                progress={"u-2": Progress(delivered=True, read=status is Status.READ)},
                reached=(*loaded[s.id].reached, status.height),
            )
            for s in states
        ]
        published = {s.id: HEIGHTS[step - 1].height for s in states}
        # One overlapping pair per message, all at once.
        results = await asyncio.gather(
            *(repo.save_many([a], {a.id: (status.height,)}) for a in advanced),
            *(repo.mark_published({i: v}) for i, v in published.items()),
        )
        assert all(r is None or r.conflicts == [] for r in results)
        after = await repo.load_many(s.id for s in states)
        assert {s.id: status for s in states} == {i: s.status for i, s in after.items()}
        assert published == {i: s.published_version for i, s in after.items()}
        assert {s.id: (status.height,) for s in states} == {
            i: s.unpublished for i, s in after.items()
        }

    await repo.mark_published({s.id: Status.READ.height for s in states})
    assert [] == await repo.owed()


async def test_owed_names_exactly_the_messages_with_a_dto_outstanding(
    store: Store,
) -> None:
    """owed() lists submitted messages whose current version is not out."""
    repo = MessageRepository(store)
    states = [submitted(i) for i in range(3)]
    await repo.save_many(states, {s.id: (1,) for s in states})
    await repo.mark_published({"m-0": 1, "m-1": 0})
    # A receipts-only document owes nothing until its message arrives.
    await repo.save_many([MessageState(id="m-9", conversation_id="c-1")])

    assert ["m-1", "m-2"] == await repo.owed()


class UpdatesInFlight(monitoring.CommandListener):
    """Counts the update commands a client has in flight, and their size."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.largest = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "update":
            self.now += 1
            self.most = max(self.most, self.now)
            self.largest = max(self.largest, len(event.command["updates"]))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.command_name == "update":
            self.now -= 1

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        if event.command_name == "update":
            self.now -= 1


async def test_many_update_batches_at_once_never_stall_the_store(
    settings: Settings, store: Store
) -> None:
    """Six batches of 150 updates of stored documents, all at once, finish.

    FerretDB v1 holds a pooled connection for every matched statement of an
    update command until the command ends; 100 such statements in flight
    stall it for good. Courier's store sends at most FERRET_CHUNK statements
    a command and FERRET_WRITES_IN_FLIGHT commands at once there."""
    watch = UpdatesInFlight()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        settings.mongodb_uri.get_secret_value(), event_listeners=[watch]
    )
    mine = Store(client, settings.mongodb_database)
    await mine.detect()
    col = mine.collection("counters")
    await col.insert_many([{"_id": f"d-{i}", "n": 0} for i in range(400)])

    async def batch(k: int) -> None:
        ops: list[WriteOp] = [
            UpdateOne({"_id": f"d-{i}"}, {"$inc": {"n": 1}})
            for i in range(k * 50, k * 50 + 150)
        ]
        await mine.bulk_write(col, ops, ignore_duplicates=False)

    try:
        await asyncio.wait_for(asyncio.gather(*(batch(k) for k in range(6))), 120)
        total = sum([d["n"] async for d in col.find({})])
    finally:
        await client.close()

    assert 6 * 150 == total
    if not mine.guarded_writes:  # FerretDB
        assert watch.most <= FERRET_WRITES_IN_FLIGHT
        assert watch.largest <= FERRET_CHUNK


async def test_naming_a_held_receipt_never_overwrites_a_stored_message(
    store: Store,
) -> None:
    """A worker that read a placeholder and names a receipt on it after
    another worker stored the message changes only ``held``: the stored
    submission, status and progress stay, and the returned state shows the
    message arrived. A new id gets a PENDING placeholder."""
    repo = MessageRepository(store)
    state = replace(submitted(1), progress={"u-2": Progress(delivered=True)})
    assert [] == (await repo.save_many([state], {state.id: (1,)})).conflicts
    before = await store.collection("messages").find_one({"_id": state.id})

    got = await repo.hold(
        {state.id: ("c-1", ("t.r:0:5",)), "m-new": ("c-1", ("t.r:0:6",))}
    )

    after = await store.collection("messages").find_one({"_id": state.id})
    assert before is not None
    assert after is not None
    untouched = {k: v for k, v in before.items() if k not in ("held", "writer")}
    assert untouched == {k: v for k, v in after.items() if k not in ("held", "writer")}
    assert ["t.r:0:5"] == after["held"]
    assert got[state.id].submission is not None
    assert (None, Status.PENDING, ("t.r:0:6",)) == (
        got["m-new"].submission,
        got["m-new"].status,
        got["m-new"].held,
    )
