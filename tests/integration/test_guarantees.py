"""The promises of the README's Guarantees section, each against real services."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError

from contracts import MAX_CONTENT_BYTES, MessageDTO
from storage import Store
from tests.integration.harness import (
    Out,
    Pipeline,
    committed_lag,
    eventually,
    publish,
    read_all,
    store_for,
)
from workers.context import Context
from workers.kafka import (
    Record,
    SharedProducer,
    ensure_topics,
    make_producer,
    topic_size,
)
from workers.settings import Settings
from workers.status import StatusWorker


def user(uid: str, name: str, **extra: Any) -> bytes:
    body = {"event_id": f"e-{uid}-{name}", "id": uid, "display_name": name} | extra
    return json.dumps(body).encode()


def conversation(cid: str, members: list[str]) -> bytes:
    body = {
        "event_id": f"e-{cid}",
        "id": cid,
        "title": f"#{cid}",
        "kind": "group",
        "participant_ids": members,
    }
    return json.dumps(body).encode()


def message(mid: str, sender: str = "u-1", cid: str = "c-1", **extra: Any) -> bytes:
    body = {
        "event_id": f"e-{mid}",
        "schema_version": 1,
        "id": mid,
        "sender_id": sender,
        "conversation_id": cid,
        "content": f"text of {mid}",
        "type": "TEXT",
        "timestamp": "2024-05-01T12:00:00.123Z",
    } | extra
    return json.dumps(body).encode()


def receipt(mid: str, who: str, status: str, at: str, cid: str = "c-1") -> bytes:
    body = {
        "event_id": f"r-{mid}-{who}-{status}-{at}",
        "message_id": mid,
        "conversation_id": cid,
        "recipient_id": who,
        "status": status,
        "timestamp": at,
    }
    return json.dumps(body).encode()


async def directory(settings: Settings, store: Store, members: list[str]) -> None:
    t = settings.topics
    await publish(
        settings,
        [Out(t.users, m, user(m, m.upper())) for m in members]
        + [Out(t.conversations, "c-1", conversation("c-1", members))],
    )

    async def stored() -> bool:
        return await store.collection("conversations").count_documents({}) == 1

    await eventually(stored, 30, "the conversation is stored")


async def dead_letters(settings: Settings, count: int) -> list[Any]:
    return await read_all(settings, settings.topics.dlq, lambda got: len(got) >= count)


async def test_bad_records_are_dead_lettered_once_and_the_partition_moves_on(
    settings: Settings, store: Store, capfd: pytest.CaptureFixture[str]
) -> None:
    """Case 1: good, truncated JSON, contract breach, good: lag ends at zero."""
    settings = settings.model_copy(update={"partitions": 1})
    t = settings.topics
    async with Pipeline(settings):
        await directory(settings, store, ["u-1", "u-2"])
        await publish(
            settings,
            [
                Out(t.messages, "c-1", message("m1")),
                Out(t.messages, "c-1", b'{"event_id": "e-2", "id": "m2", "sen'),
                Out(t.messages, "c-1", b'{"event_id": "e-3", "id": "m3", "type": "X"}'),
                Out(t.messages, "c-1", message("m4")),
            ],
        )
        letters = await dead_letters(settings, 2)
        messages = store.collection("messages")

        async def both_stored() -> bool:
            return await messages.count_documents({}) == 2

        await eventually(both_stored, 30, "m1 and m4 are stored")
        await asyncio.sleep(1)

        async def no_lag() -> bool:
            return (
                await committed_lag(settings, settings.group("status"), t.messages) == 0
            )

        await eventually(no_lag, 30, "the status group's lag returns to zero")
    stored = sorted(d["_id"] for d in await messages.find({}).to_list(None))
    assert ["m1", "m4"] == stored
    await asyncio.sleep(0.5)
    assert 2 == len(await dead_letters(settings, 2))
    headers = [dict(r.headers) for r in letters]
    assert [b"1", b"2"] == sorted(h["courier.dlq.offset"] for h in headers)
    assert {t.messages.encode()} == {h["courier.dlq.topic"] for h in headers}
    reasons = sorted(h["courier.dlq.reason"].decode() for h in headers)
    assert "could not be parsed as UTF-8 JSON" in reasons[1]
    assert "sender_id: Field required" in reasons[0]
    assert "type:" in reasons[0]
    assert "'X'" in reasons[0]
    assert b'{"event_id": "e-2", "id": "m2", "sen' in [r.value for r in letters]
    # The error is logged once per record, not over and over.
    err = capfd.readouterr().err
    assert 2 == err.count('"event.dead_lettered"')


async def test_receipts_out_of_order_never_lower_the_status(
    settings: Settings, store: Store
) -> None:
    """Case 4: DELIVERED, READ, a late SENT-stage event, DELIVERED again: READ."""
    t = settings.topics
    async with Pipeline(settings):
        await directory(settings, store, ["u-1", "u-2"])
        await publish(settings, [Out(t.messages, "c-1", message("m1"))])
        await publish(
            settings,
            [
                Out(
                    t.receipts,
                    "c-1",
                    receipt("m1", "u-2", "DELIVERED", "2024-05-01T12:00:02Z"),
                ),
                Out(
                    t.receipts,
                    "c-1",
                    receipt("m1", "u-2", "READ", "2024-05-01T12:00:05Z"),
                ),
                Out(t.messages, "c-1", message("m1")),
                Out(
                    t.receipts,
                    "c-1",
                    receipt("m1", "u-2", "DELIVERED", "2024-05-01T12:00:02Z"),
                ),
            ],
        )
        dtos = await read_all(
            settings,
            t.client_messages,
            lambda got: any(b'"READ"' in r.value for r in got),
        )
        await asyncio.sleep(1.0)
        dtos = await read_all(settings, t.client_messages, lambda got: True)
    doc = await store.collection("messages").find_one({"_id": "m1"})
    assert doc is not None
    assert "READ" == doc["status"]
    versions = [MessageDTO.model_validate_json(r.value).version for r in dtos]
    assert sorted(versions) == versions
    statuses = [MessageDTO.model_validate_json(r.value).status.value for r in dtos]
    assert "READ" == statuses[-1]
    assert len(set(versions)) == len(versions)


async def test_bad_header_bytes_and_null_headers_do_not_stop_the_worker(
    settings: Settings, store: Store
) -> None:
    """Case 5: a non-UTF-8 header value and a null one: both messages stored."""
    t = settings.topics
    async with Pipeline(settings):
        await directory(settings, store, ["u-1", "u-2"])
        await publish(
            settings,
            [
                Out(t.messages, "c-1", message("m1"), [("trace", b"\xff\xfe\x00")]),
                Out(t.messages, "c-1", message("m2"), [("trace", None)]),
                Out(t.messages, "c-1", message("m3")),
            ],
        )

        async def all_stored() -> bool:
            return await store.collection("messages").count_documents({}) == 3

        await eventually(all_stored, 30, "all three messages are stored")


async def test_two_workers_racing_on_a_new_message_leave_one_document(
    settings: Settings, store: Store
) -> None:
    """Case 6: concurrent writers on a message not yet stored: one document."""
    t = settings.topics
    await ensure_topics(settings.kafka_bootstrap_servers, t, settings.partitions)
    await directory_direct(settings, store)
    workers = []
    for _ in range(2):
        own = store_for(settings)
        await own.detect()
        producer = SharedProducer(
            lambda: make_producer(settings.kafka_bootstrap_servers)
        )
        await producer.start()
        workers.append(
            StatusWorker(Context(settings=settings, store=own, producer=producer))
        )

    def rec(topic: str, value: bytes, offset: int) -> Record:
        return Record(topic, 0, offset, b"c-1", value, (), 0)

    first = [rec(t.messages, message("m1"), 0)]
    second = [
        rec(t.receipts, receipt("m1", "u-2", "READ", "2024-05-01T12:00:05Z"), 0),
        rec(t.receipts, receipt("m1", "u-3", "READ", "2024-05-01T12:00:06Z"), 1),
    ]
    results = await asyncio.gather(workers[0].handle(first), workers[1].handle(second))
    assert [[], []] == list(results)
    # Receipts that found no message were parked, and re-driven to their topic
    # when it was stored; a running pipeline takes them from there.
    async with Pipeline(settings):

        async def read() -> bool:
            doc = await store.collection("messages").find_one({"_id": "m1"})
            return doc is not None and doc["status"] == "READ"

        await eventually(read, 30, "both receipts count")
    assert 1 == await store.collection("messages").count_documents({})
    assert 0 == await store.collection("parked").count_documents({})
    for w in workers:
        await w.ctx.producer.stop()
        await w.ctx.store.close()


async def directory_direct(settings: Settings, store: Store) -> None:
    from contracts import ConversationUpserted, UserUpserted
    from storage import ConversationRepository, UserRepository

    await UserRepository(store).upsert_many(
        [
            UserUpserted(event_id=f"e-{u}", id=u, display_name=u)
            for u in ("u-1", "u-2", "u-3")
        ]
    )
    await ConversationRepository(store).upsert_many(
        [
            ConversationUpserted.model_validate(
                json.loads(conversation("c-1", ["u-1", "u-2", "u-3"]))
            )
        ]
    )


async def test_every_accepted_timestamp_form_lands_on_one_instant(
    settings: Settings, store: Store
) -> None:
    """Case 7: epoch s, ms, float, numeric string agree; a 1970 reading is refused."""
    t = settings.topics
    forms: list[Any] = [1714564800, 1714564800000, 1714564800.0, "1714564800"]
    async with Pipeline(settings):
        await directory(settings, store, ["u-1", "u-2"])
        await publish(
            settings,
            [
                Out(t.messages, "c-1", message(f"m{i}", timestamp=form))
                for i, form in enumerate(forms)
            ]
            + [Out(t.messages, "c-1", message("m-1970", timestamp=1714564))],
        )
        letters = await dead_letters(settings, 1)

        async def four_stored() -> bool:
            return await store.collection("messages").count_documents({}) == 4

        await eventually(four_stored, 30, "the four good forms are stored")
    docs = await store.collection("messages").find({}).to_list(None)
    assert {datetime(2024, 5, 1, 12, 0, tzinfo=UTC)} == {d["timestamp"] for d in docs}
    reason = dict(letters[0].headers)["courier.dlq.reason"].decode()
    assert "1714564" in reason
    assert "neither epoch seconds nor epoch milliseconds" in reason


async def test_oversized_content_is_refused_with_a_reason_never_dropped(
    settings: Settings, store: Store
) -> None:
    """Case 8: too big for the broker fails loudly; over our limit, dead-lettered."""
    t = settings.topics
    await ensure_topics(settings.kafka_bootstrap_servers, t, settings.partitions)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for content in ("a" * 1_500_000, "\U0001f600" * 300_000):
            body = json.loads(message("m-big"))
            body["content"] = content
            raw = json.dumps(body, ensure_ascii=False).encode()
            with pytest.raises(MessageSizeTooLargeError):
                await producer.send_and_wait(t.messages, raw, key=b"c-1")
    finally:
        await producer.stop()

    over = "\U0001f600" * (MAX_CONTENT_BYTES // 4 + 1)
    async with Pipeline(settings):
        await directory(settings, store, ["u-1", "u-2"])
        await publish(
            settings,
            [
                Out(t.messages, "c-1", message("m-over", content=over)),
                Out(t.messages, "c-1", message("m-ok", content="\U0001f600 ok ✓")),
            ],
        )
        letters = await dead_letters(settings, 1)

        async def ok_stored() -> bool:
            return await store.collection("messages").count_documents({}) == 1

        await eventually(ok_stored, 30, "the message within the limit is stored")
    reason = dict(letters[0].headers)["courier.dlq.reason"].decode()
    assert f"over the limit of {MAX_CONTENT_BYTES:,} bytes" in reason
    doc = await store.collection("messages").find_one({"_id": "m-ok"})
    assert doc is not None
    assert "\U0001f600 ok ✓" == doc["content"]


async def test_a_receipt_before_its_message_and_an_unknown_sender_both_land(
    settings: Settings, store: Store
) -> None:
    """Case 9: nothing is dropped or half-resolved while an entity is missing."""
    t = settings.topics
    async with Pipeline(settings):
        await directory(settings, store, ["u-1", "u-2"])
        await publish(
            settings,
            [
                Out(
                    t.receipts,
                    "c-1",
                    receipt("m120", "u-2", "READ", "2024-05-01T12:00:09Z"),
                ),
                Out(t.messages, "c-1", message("m121", sender="u-9")),
            ],
        )

        async def parked() -> bool:
            return await store.collection("parked").count_documents({}) == 2

        await eventually(
            parked, 30, "the early receipt and the unknown sender's message are parked"
        )
        await publish(settings, [Out(t.messages, "c-1", message("m120"))])
        await publish(settings, [Out(t.users, "u-9", user("u-9", "Nine"))])

        def landed(got: list[Any]) -> bool:
            seen = {(d["id"], d["status"]) for d in (json.loads(r.value) for r in got)}
            return {("m120", "READ"), ("m121", "SENT")} <= seen

        dtos = await read_all(settings, t.client_messages, landed)
    by_id = {MessageDTO.model_validate_json(r.value).id: r for r in dtos}
    late = MessageDTO.model_validate_json(by_id["m121"].value)
    assert ("u-9", "Nine") == (late.sender.id, late.sender.display_name)
    # u-2 had read m120 before it arrived: the receipt counts once it is stored.
    statuses = [
        d.status.value
        for d in (MessageDTO.model_validate_json(r.value) for r in dtos)
        if d.id == "m120"
    ]
    assert "READ" == statuses[-1]
    assert 0 == await store.collection("parked").count_documents({})


async def test_dtos_after_a_rename_show_the_new_name(
    settings: Settings, store: Store
) -> None:
    """Directory changes reach every DTO produced after them."""
    t = settings.topics
    async with Pipeline(settings):
        await directory(settings, store, ["u-1", "u-2"])
        await publish(settings, [Out(t.messages, "c-1", message("m1"))])
        await read_all(settings, t.client_messages, lambda got: len(got) >= 1)
        await publish(
            settings,
            [Out(t.users, "u-1", user("u-1", "Ada Lovelace"))],
        )

        async def renamed() -> bool:
            doc = await store.collection("users").find_one({"_id": "u-1"})
            return doc is not None and doc["display_name"] == "Ada Lovelace"

        await eventually(renamed, 30, "the rename is stored")
        await publish(
            settings,
            [
                Out(
                    t.receipts,
                    "c-1",
                    receipt("m1", "u-2", "DELIVERED", "2024-05-01T12:00:02Z"),
                )
            ],
        )
        dtos = await read_all(settings, t.client_messages, lambda got: len(got) >= 2)
    first, second = (MessageDTO.model_validate_json(r.value) for r in dtos[:2])
    assert ("U-1", "SENT") == (first.sender.display_name, first.status.value)
    assert ("Ada Lovelace", "DELIVERED") == (
        second.sender.display_name,
        second.status.value,
    )


@pytest.mark.parametrize("receipt_first", [True, False])
async def test_a_stray_receipt_is_refused_whichever_comes_first(
    settings: Settings, store: Store, receipt_first: bool
) -> None:
    """A receipt naming another conversation is dead-lettered with the reason and
    counts for nothing, before or after its message arrives."""
    t = settings.topics
    stray = receipt("m7", "u-2", "READ", "2024-05-01T12:00:02Z", cid="c-x")
    async with Pipeline(settings):
        await directory(settings, store, ["u-1", "u-2"])
        first, second = (
            Out(t.receipts, "c-x", stray),
            Out(t.messages, "c-1", message("m7")),
        )
        if not receipt_first:
            first, second = second, first
        await publish(settings, [first])
        if receipt_first:

            async def parked() -> bool:
                return await store.collection("parked").count_documents({}) == 1

            await eventually(parked, 30, "the early receipt is parked")
        await publish(settings, [second])
        letters = await dead_letters(settings, 1)
        dtos = await read_all(settings, t.client_messages, lambda got: len(got) >= 1)
    assert stray == letters[0].value
    reason = dict(letters[0].headers)["courier.dlq.reason"].decode()
    assert "message m7 belongs to conversation c-1, not c-x" == reason
    doc = await store.collection("messages").find_one({"_id": "m7"})
    assert doc is not None
    assert ("c-1", "SENT", []) == (
        doc["conversation_id"],
        doc["status"],
        [p for p in doc["progress"] if p["read"] or p["delivered"]],
    )
    assert ["SENT"] == [
        MessageDTO.model_validate_json(r.value).status.value for r in dtos
    ]
    assert 0 == await store.collection("parked").count_documents({})


async def test_a_record_waiting_past_the_bound_is_dead_lettered_with_what_is_missing(
    settings: Settings, store: Store
) -> None:
    """Parked longer than COURIER_PARK_TIMEOUT_S: dead-lettered, naming the gap."""
    settings = settings.model_copy(update={"park_timeout_s": 1.0, "park_sweep_s": 0.3})
    t = settings.topics
    original = message("m-orphan", sender="u-404")
    async with Pipeline(settings):
        await directory(settings, store, ["u-1", "u-2"])
        await publish(settings, [Out(t.messages, "c-1", original, [("trace", b"x")])])
        letters = await dead_letters(settings, 1)

        async def unparked() -> bool:
            return await store.collection("parked").count_documents({}) == 0

        await eventually(unparked, 30, "the parking place is empty again")
    headers = dict(letters[0].headers)
    assert "waited 1 s for user:u-404, which never arrived" == (
        headers["courier.dlq.reason"].decode()
    )
    assert (original, b"x") == (letters[0].value, headers["trace"])
    assert t.messages.encode() == headers["courier.dlq.topic"]
    assert None is await store.collection("messages").find_one({"_id": "m-orphan"})


async def test_a_receipt_whose_message_never_comes_is_dead_lettered_after_the_bound(
    settings: Settings, store: Store
) -> None:
    """A receipt waits for its message no longer than COURIER_PARK_TIMEOUT_S;
    then it is dead-lettered naming the message, and it counted for nothing."""
    settings = settings.model_copy(update={"park_timeout_s": 1.0, "park_sweep_s": 0.3})
    t = settings.topics
    early = receipt("m-never", "u-2", "READ", "2024-05-01T12:00:09Z")
    async with Pipeline(settings):
        await directory(settings, store, ["u-1", "u-2"])
        await publish(settings, [Out(t.receipts, "c-1", early)])
        letters = await dead_letters(settings, 1)

        async def unparked() -> bool:
            return await store.collection("parked").count_documents({}) == 0

        await eventually(unparked, 30, "the parking place is empty again")
    headers = dict(letters[0].headers)
    assert "waited 1 s for message:m-never, which never arrived" == (
        headers["courier.dlq.reason"].decode()
    )
    assert (early, t.receipts.encode()) == (
        letters[0].value,
        headers["courier.dlq.topic"],
    )
    doc = await store.collection("messages").find_one({"_id": "m-never"})
    assert doc is not None
    # FerretDB v1 leaves the placeholder's empty fields out on insert.
    assert ("PENDING", [], None) == (
        doc["status"],
        doc.get("progress", []),
        doc.get("content"),
    )


async def test_a_receipt_stranded_by_a_crash_is_re_driven_not_dead_lettered(
    settings: Settings, store: Store
) -> None:
    """A worker killed between parking a receipt and naming it on its
    message leaves it parked while the message is stored without it; at the
    bound the sweep finds the message stored and re-drives the receipt."""
    from storage import ParkedRecord, ParkingRepository

    settings = settings.model_copy(update={"park_timeout_s": 1.0, "park_sweep_s": 0.3})
    t = settings.topics
    early = receipt("m-s", "u-2", "READ", "2024-05-01T12:00:09Z")
    async with Pipeline(settings):
        await directory(settings, store, ["u-1", "u-2"])
        await publish(settings, [Out(t.messages, "c-1", message("m-s"))])

        async def sent() -> bool:
            doc = await store.collection("messages").find_one({"_id": "m-s"})
            return doc is not None and doc["status"] == "SENT"

        await eventually(sent, 30, "the message is stored")
        # What the crashed worker left: the receipt parked, named nowhere.
        await ParkingRepository(store).park(
            [
                ParkedRecord(
                    topic=t.receipts,
                    partition=0,
                    offset=0,
                    key=b"c-1",
                    value=early,
                    headers=(),
                    missing=("message:m-s",),
                    parked_at=datetime.now(UTC),
                )
            ]
        )

        async def read() -> bool:
            doc = await store.collection("messages").find_one({"_id": "m-s"})
            return doc is not None and doc["status"] == "READ"

        await eventually(read, 30, "the stranded receipt counts")
        assert 0 == await store.collection("parked").count_documents({})
    assert 0 == await topic_size(settings.kafka_bootstrap_servers, t.dlq)
