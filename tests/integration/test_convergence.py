"""Any order and any duplication of the same events: the same stored state."""

from __future__ import annotations

import random

from contracts import MessageDTO
from storage import MessageRepository, Store
from tests.integration.harness import (
    Out,
    Pipeline,
    committed_lag,
    eventually,
    publish,
    read_all,
)
from tests.integration.test_guarantees import directory, message, receipt
from workers.settings import Settings

MEMBERS = ["u-1", "u-2", "u-3"]
STATUSES = ["DELIVERED", "READ", "FAILED"]


def events(settings: Settings, count: int) -> list[Out]:
    """Messages with a mix of receipts, in a natural order."""
    t = settings.topics
    rng = random.Random(7)
    out: list[Out] = []
    for i in range(count):
        mid = f"m{i:03d}"
        out.append(Out(t.messages, "c-1", message(mid)))
        for who in ("u-2", "u-3"):
            for status in rng.sample(STATUSES, rng.randint(0, 3)):
                at = f"2024-05-01T12:0{rng.randint(1, 9)}:00Z"
                out.append(Out(t.receipts, "c-1", receipt(mid, who, status, at)))

    return out


async def final_state(
    settings: Settings, store: Store, records: list[Out], count: int
) -> tuple[dict[str, tuple[object, ...]], dict[str, tuple[int, str]]]:
    async with Pipeline(settings):
        await directory(settings, store, MEMBERS)
        await publish(settings, records)
        messages = store.collection("messages")

        async def settled() -> bool:
            # Receipts that came before their message are parked, then sent
            # back to their topic: wait until none is parked and the sent
            # back ones are consumed, in that order, before the rest.
            if await store.collection("parked").count_documents({}):
                return False
            t = settings.topics
            if await committed_lag(settings, settings.group("status"), t.receipts):
                return False
            stored = await messages.count_documents({"content": {"$ne": None}})
            owed = await MessageRepository(store).owed()
            return stored == count and not owed

        await eventually(settled, 90, "every message stored, every DTO out")
        dtos = await read_all(settings, settings.topics.client_messages, lambda g: True)
    docs = await messages.find({}).to_list(None)
    # Which intermediate versions a message passed depends on arrival order;
    # what it ends as, and that its last DTO is out, must not.
    published = {
        d["_id"]: d["version"] async for d in store.collection("published").find({})
    }
    state: dict[str, tuple[object, ...]] = {
        d["_id"]: (
            d["status"],
            d["version"],
            d["content"],
            tuple(d["recipients"]),
            tuple(
                (p["recipient_id"], p["delivered"], p["read"], p["failed"])
                for p in d["progress"]
            ),
            published.get(d["_id"]),
        )
        for d in docs
    }
    last: dict[str, tuple[int, str]] = {}
    for r in dtos:
        dto = MessageDTO.model_validate_json(r.value)
        last[dto.id] = max(last.get(dto.id, (0, "")), (dto.version, dto.status.value))

    return state, last


async def test_shuffled_and_duplicated_events_converge_on_real_services(
    settings: Settings, store: Store
) -> None:
    """The same events in order, and shuffled with repeats, end identically."""
    count = 60
    ordered = events(settings, count)
    in_order, dtos_in_order = await final_state(settings, store, ordered, count)

    other = settings.model_copy(
        update={
            "topic_prefix": settings.topic_prefix + "shuffled.",
            "mongodb_database": settings.mongodb_database + "_shuffled",
        }
    )
    rng = random.Random(11)
    mixed = [
        Out(
            other.topics.messages
            if r.topic == settings.topics.messages
            else other.topics.receipts,
            r.key,
            r.value,
        )
        for r in ordered + rng.sample(ordered, len(ordered) // 2)
    ]
    rng.shuffle(mixed)
    shuffled_store = Store(store.client, other.mongodb_database)
    await shuffled_store.detect()
    try:
        shuffled, dtos_shuffled = await final_state(other, shuffled_store, mixed, count)
    finally:
        await store.client.drop_database(other.mongodb_database)

    assert in_order == shuffled
    assert dtos_in_order == dtos_shuffled
    assert {s[0] for s in in_order.values()} > {"SENT"}
