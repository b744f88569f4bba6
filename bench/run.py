"""The benchmark's phases: seed, drain, paced latency, scaling, store ceiling.

Each variant gets its own topic prefix, consumer groups, database and
client topic. See the README's Performance section for what each figure
means.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from aiokafka import AIOKafkaProducer

from bench.probes import REPO, Dtos, Lag, Workers, wait_joined
from bench.workload import Directory, Event, causes, expected_states
from storage import (
    ConversationRepository,
    Lookup,
    MessageRepository,
    MessageState,
    Store,
    UserRepository,
)
from storage.mongo import find_by_ids
from workers.cache import DirectoryCache
from workers.context import Context
from workers.enrichment import EnrichmentWorker
from workers.kafka import Record, SharedProducer, ensure_topics
from workers.settings import Settings
from workers.status import StatusWorker

Say = Callable[[str], None]
LOGS = REPO / ".local" / "log"
BATCH = 500


@dataclass
class Variant:
    name: str
    settings: Settings
    argv: list[str]
    workers: Workers | None = None
    dtos: Dtos | None = None
    states: dict[str, MessageState] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def variant(base: Settings, run: str, name: str, processes: int = 1) -> Variant:
    settings = base.model_copy(
        update={
            "topic_prefix": f"bench-{run}-{name}.",
            "mongodb_database": f"bench_{run}_{name.replace('-', '_')}",
            "http_port": 0,
            "log_format": "json",
        }
    )
    if name.startswith("naive"):
        argv = ["bench.naive"]
    else:
        argv = ["workers.cli", "run", "all", "--processes", str(processes)]

    return Variant(name, settings, argv)


async def seed(settings: Settings, directory: Directory) -> Store:
    """Create the topics and store the directory straight into the database."""
    await ensure_topics(
        settings.kafka_bootstrap_servers, settings.topics, settings.partitions
    )
    store = Store.connect(
        settings.mongodb_uri.get_secret_value(), settings.mongodb_database
    )
    await store.detect()
    await store.ensure_indexes()
    users, rooms = UserRepository(store), ConversationRepository(store)
    for i in range(0, len(directory.users), BATCH):
        await users.upsert_many(directory.users[i : i + BATCH])
    for i in range(0, len(directory.conversations), BATCH):
        await rooms.upsert_many(directory.conversations[i : i + BATCH])

    return store


def _producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
    )


async def prefill(settings: Settings, events: Sequence[Event]) -> None:
    """Publish ``events`` as fast as the broker takes them."""
    producer = _producer(settings)
    await producer.start()
    t = settings.topics
    topic = {"messages": t.messages, "receipts": t.receipts}
    try:
        pending = []
        for e in events:
            pending.append(await producer.send(topic[e.kind], e.value, key=e.key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def _groups(settings: Settings) -> list[str]:
    return [settings.group(n) for n in ("directory", "status", "enrichment")]


@dataclass
class Drain:
    events: int
    seconds: float
    cpu_s: float

    @property
    def msgs_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_us_per_msg(self) -> float:
        return self.cpu_s / self.events * 1e6


async def start(v: Variant, processes: int = 1) -> None:
    """Start the variant's workers and its DTO reader; wait until they joined."""
    v.dtos = Dtos(v.settings)
    await v.dtos.start()
    v.workers = Workers(v.settings, v.argv, LOGS / f"{v.settings.topic_prefix}log")
    v.workers.start()
    await wait_joined(v.settings, _groups(v.settings), processes, 120)


async def drain(
    v: Variant,
    directory: Directory,
    events: Sequence[Event],
    *,
    processes: int = 1,
    within_s: float,
) -> Drain:
    """Start the workers, publish ``events``, time until every last DTO is out."""
    store = await seed(v.settings, directory)
    await store.close()
    v.states.update(expected_states(events, directory.participants))
    await start(v, processes)
    assert v.workers is not None
    assert v.dtos is not None
    v.dtos.expect({i: s.version for i, s in v.states.items()})
    # The workers are idle and joined: the clock starts with the first record
    # published, and the broker takes records far faster than they drain.
    started, cpu = time.monotonic(), v.workers.cpu_s()
    await prefill(v.settings, events)
    if not await v.dtos.wait(started + within_s, v.workers):
        v.problems.append(
            f"{v.name}: {len(v.dtos.final) - v.dtos.done} of {len(v.dtos.final)} "
            f"messages had no final DTO after {within_s:g} s"
        )

    return Drain(len(events), time.monotonic() - started, v.workers.cpu_s() - cpu)


@dataclass
class Step:
    rate: float
    seconds: float
    sent: int
    latencies_ms: list[float]
    missing: int
    lag_slope: float
    steady: bool

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)

        return ordered[max(index, 0)]

    def summary(self) -> dict[str, Any]:
        return {
            "rate": round(self.rate),
            "seconds": round(self.seconds, 1),
            "events": self.sent,
            "p50_ms": _r(self.percentile(50)),
            "p99_ms": _r(self.percentile(99)),
            "p999_ms": _r(self.percentile(99.9)),
            "dtos_measured": len(self.latencies_ms),
            "dtos_missing": self.missing,
            "lag_slope_per_s": round(self.lag_slope, 1),
            "steady": self.steady,
        }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def _slope(points: list[tuple[float, int]]) -> float:
    if len(points) < 3:
        return 0.0
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    den = sum((p[0] - mx) ** 2 for p in points)

    return sum((p[0] - mx) * (p[1] - my) for p in points) / den if den else 0.0


def _growing(timed: list[tuple[float, float]]) -> bool:
    """Whether latency climbs through the hold: a queue that keeps growing."""
    if len(timed) < 20:
        return False
    ordered = [ms for _, ms in sorted(timed)]
    half = len(ordered) // 2
    early = sorted(ordered[:half])[half // 2]
    late = sorted(ordered[half:])[(len(ordered) - half) // 2]

    return late > 2 * early + 100


async def quiet(v: Variant, lag: Lag, within_s: float) -> bool:
    """Wait until the workers caught up: no lag and every DTO out."""
    assert v.dtos is not None
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if v.dtos.done >= len(v.dtos.final) and await lag.total() == 0:
            return True
        await asyncio.sleep(0.2)

    return False


async def paced(
    v: Variant,
    lag: Lag,
    events: Sequence[Event],
    participants: dict[str, tuple[str, ...]],
    rate: float,
    hold: float,
    patience: float,
) -> Step:
    """Publish ``events`` at ``rate`` per second; measure DTO latency and lag."""
    assert v.dtos is not None
    steps = causes(events, participants)
    final = expected_states(events, participants)
    v.states.update(final)
    v.dtos.expect({i: s.version for i, s in final.items()})
    producer = _producer(v.settings)
    await producer.start()
    t = v.settings.topics
    topic = {"messages": t.messages, "receipts": t.receipts}
    sent_at: list[float] = []
    samples: list[tuple[float, int]] = []
    begun = time.monotonic()
    next_sample = begun
    try:
        pending = []
        for index, e in enumerate(events):
            due = begun + index / rate
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            if time.monotonic() >= next_sample:
                samples.append((time.monotonic() - begun, await lag.total()))
                next_sample += 0.5
            stamp = time.time()
            sent_at.append(stamp)
            pending.append(
                await producer.send(
                    topic[e.kind], e.value, key=e.key, timestamp_ms=int(stamp * 1000)
                )
            )
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    seconds = time.monotonic() - begun
    arrived = await v.dtos.wait(time.monotonic() + patience)
    # Lag measured in the second half of the hold: a steady pipeline keeps it flat.
    slope = _slope([s for s in samples if s[0] >= seconds / 2])
    warm = sent_at[0] + seconds / 4 if sent_at else 0.0
    latencies, missing = [], 0
    timed: list[tuple[float, float]] = []
    for mid, reached in steps.items():
        for version, index in reached:
            if sent_at[index] < warm:
                continue
            came = v.dtos.arrivals.get((mid, version))
            if came is None:
                # Skipped versions are fine when a later one came: the
                # message went past them within one batch.
                later = [x for x, _ in reached if x > version]
                later_came = [v.dtos.arrivals.get((mid, x)) for x in later]
                hit = [c for c in later_came if c is not None]
                if hit:
                    latencies.append((min(hit) - sent_at[index]) * 1000)
                else:
                    missing += 1
                continue
            latencies.append((came - sent_at[index]) * 1000)
            timed.append((sent_at[index], latencies[-1]))
    steady = (
        arrived
        and slope <= max(0.05 * rate, 5.0)
        and missing == 0
        and not _growing(timed)
    )

    return Step(rate, seconds, len(events), latencies, missing, slope, steady)


class FakeProducer:
    """Acknowledges every send at once and keeps what was sent, for the ceiling."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, **_: Any
    ) -> asyncio.Future[None]:
        self.sent.append((topic, key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)

        return done


async def store_ceiling(
    settings: Settings, directory: Directory, events: Sequence[Event]
) -> dict[str, Any]:
    """The real status and enrichment handlers straight on the store.

    Batches of 500 records go through both workers' ``handle`` with a
    producer that acknowledges at once, the enrichment of one batch
    overlapping the status of the next as in the pipeline: what is left is
    the store work (and the handlers' own Python) with no Kafka at all.
    """
    store = await seed(settings, directory)
    fake = FakeProducer()
    # The pipeline's directory cache, never dropped here: the directory does
    # not change while the ceiling runs, so nothing needs announcing.
    cache = DirectoryCache(
        settings.kafka_bootstrap_servers,
        settings.topics.directory_changes,
        settings.directory_cache_size,
    )
    ctx = Context(
        settings=settings,
        store=store,
        producer=SharedProducer(lambda: cast(Any, fake)),
        cache=cache,
    )
    status, enrichment = StatusWorker(ctx), EnrichmentWorker(ctx)
    t = settings.topics
    topic = {"messages": t.messages, "receipts": t.receipts}
    records = [
        Record(topic[e.kind], 0, i, e.key, e.value, (), 0) for i, e in enumerate(events)
    ]
    queue: asyncio.Queue[list[Record] | None] = asyncio.Queue(maxsize=2)

    async def enrich() -> None:
        while (batch := await queue.get()) is not None:
            await enrichment.handle(batch)

    began = time.monotonic()
    task = asyncio.create_task(enrich())
    for i in range(0, len(records), BATCH):
        await status.handle(records[i : i + BATCH])
        changes = [
            Record(t.message_changes, 0, n, key, value, (), 0)
            for n, (name, key, value) in enumerate(fake.sent)
            if name == t.message_changes
        ]
        fake.sent.clear()
        await queue.put(changes)
    await queue.put(None)
    await task
    seconds = time.monotonic() - began
    await store.client.drop_database(settings.mongodb_database)
    await store.close()

    return {"events": len(events), "seconds": round(seconds, 1)} | {
        "msgs_per_s": round(len(events) / seconds, 1)
    }


async def lookups(settings: Settings, samples: int = 3) -> dict[str, Any]:
    """Point reads against ``$in`` for a batch of ids, on the filled database."""
    store = Store.connect(
        settings.mongodb_uri.get_secret_value(), settings.mongodb_database
    )
    chosen = await store.detect()
    out: dict[str, Any] = {"chosen": chosen.value}
    rng = random.Random(3)
    for name in ("users", "messages"):
        col = store.collection(name)
        size = await col.estimated_document_count()
        ids = [d["_id"] async for d in col.find({}, {"_id": 1}).limit(20_000)]
        if not ids:
            continue
        row: dict[str, Any] = {"documents": size}
        for lookup in (Lookup.POINT, Lookup.IN):
            took = []
            for _ in range(samples):
                wanted = rng.sample(ids, min(BATCH, len(ids)))
                began = time.monotonic()
                await find_by_ids(col, wanted, lookup)
                took.append(time.monotonic() - began)
            row[f"{lookup.value}_ms_per_batch"] = round(min(took) * 1000, 1)
        out[name] = row
    await store.close()

    return out


async def check_store(v: Variant) -> None:
    """Every message stored once, at its final status, with nothing owed."""
    store = Store.connect(
        v.settings.mongodb_uri.get_secret_value(), v.settings.mongodb_database
    )
    await store.detect()
    col = store.collection("messages")
    stored = {d["_id"]: d async for d in col.find({}, {"status": 1, "version": 1})}
    owed = await MessageRepository(store).owed()
    await store.close()
    wrong = [
        i
        for i, s in v.states.items()
        if stored.get(i, {}).get("status") != s.status.value
    ]
    extra = len(stored) - len(v.states)
    if wrong:
        v.problems.append(
            f"{v.name}: {len(wrong)} messages not at their final status "
            f"(first: {wrong[0]})"
        )
    if owed:
        v.problems.append(f"{v.name}: {len(owed)} messages still owe a DTO")
    if extra:
        v.problems.append(f"{v.name}: {extra} stored messages were never sent")


def check_dtos(v: Variant, order: dict[str, list[str]]) -> None:
    """Every final DTO came, versions only rose, conversations kept order."""
    dtos = v.dtos
    assert dtos is not None
    missing = [
        i for i, s in v.states.items() if s.version not in dtos.versions.get(i, [])
    ]
    if missing:
        v.problems.append(f"{v.name}: {len(missing)} messages without a final DTO")
    backwards = [i for i, seen in dtos.versions.items() if seen != sorted(set(seen))]
    if backwards:
        v.problems.append(f"{v.name}: {len(backwards)} messages whose version fell")
    if dtos.two_contents:
        v.problems.append(f"{v.name}: {dtos.two_contents} versions with two contents")
    broken = []
    for cid, sent in order.items():
        ours = set(sent)
        came = [m for m in dtos.firsts.get(cid, []) if m in ours]
        arrived = set(came)
        if came != [m for m in sent if m in arrived]:
            broken.append(cid)
    if broken:
        v.problems.append(
            f"{v.name}: {len(broken)} conversations out of order (first: {broken[0]})"
        )


def conversation_order(events: Sequence[Event]) -> dict[str, list[str]]:
    order: dict[str, list[str]] = {}
    for e in events:
        if e.kind == "messages":
            order.setdefault(e.event.conversation_id, []).append(e.message_id)

    return order


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")
