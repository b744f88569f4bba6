"""The message repository against the real store, no Kafka involved."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

from contracts import MessageType, Progress, Status
from storage import MessageRepository, Store
from storage.state import MessageState, Submission

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
