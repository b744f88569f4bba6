"""Kafka plumbing shared by every worker: records, producer, topics, commits."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    DuplicateSequenceNumber,
    InvalidProducerEpoch,
    KafkaError,
    OutOfOrderSequenceNumber,
    TopicAlreadyExistsError,
)
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from faststream.message import StreamMessage

from contracts import Topics

log = structlog.get_logger("courier.kafka")

Headers = tuple[tuple[str, bytes | None], ...]

DLQ_MAX_BYTES = 4 * 1024 * 1024
"""The dead-letter topic takes records larger than any inbound topic does, so
that a record the broker accepted always fits, with its reason, in the DLQ."""

DLQ_MAX_MESSAGE_BYTES = DLQ_MAX_BYTES + 64 * 1024
"""The DLQ's ``max.message.bytes``: :data:`DLQ_MAX_BYTES` plus room for headers."""

_DYNAMIC_TOPIC_CONFIG = 1
"""DescribeConfigs' ``config_source`` of a value set on the topic itself."""


class TopicsMissing(KafkaError):  # type: ignore[misc]  # aiokafka is untyped
    """Topics a command needs do not exist, and it must not create them."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = sorted(names)
        listed = ", ".join(self.names)
        verb = "does" if len(self.names) == 1 else "do"
        super().__init__(
            f"{listed} {verb} not exist; create Courier's topics with "
            "`courier topics create` first (this command only reads)."
        )

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed Kafka record, kept exactly as it arrived."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int

    @classmethod
    def from_consumer(cls, raw: ConsumerRecord[Any, Any]) -> Record:
        return cls(
            topic=raw.topic,
            partition=raw.partition,
            offset=raw.offset,
            key=raw.key,
            value=raw.value,
            headers=tuple((k, v) for k, v in raw.headers),
            timestamp_ms=raw.timestamp,
        )

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


def _readable(headers: Iterable[tuple[str, bytes | None]]) -> list[tuple[str, bytes]]:
    # FastStream decodes every header value strictly as UTF-8 and fails the
    # whole batch on one bad value; hand it a lossless-enough view instead.
    # Courier itself reads the untouched originals from ``raw_message``.
    clean = []
    for key, value in headers:
        text = b"" if value is None else value
        try:
            text.decode("utf-8")
        except UnicodeDecodeError:
            text = text.decode("utf-8", "replace").encode("utf-8")
        clean.append((key, text))

    return clean


async def lenient_parser(
    raw: Any, original: Callable[[Any], Awaitable[StreamMessage[Any]]]
) -> StreamMessage[Any]:
    """Parse a batch whatever its headers hold, keeping the original records."""
    records = raw if isinstance(raw, tuple) else (raw,)
    cleaned = tuple(
        dataclasses.replace(r, headers=_readable(r.headers)) for r in records
    )
    message = await original(cleaned if isinstance(raw, tuple) else cleaned[0])
    message.raw_message = raw

    return message


async def raw_decoder(
    message: StreamMessage[Any], original: Callable[..., Awaitable[Any]]
) -> Any:
    """Skip FastStream's JSON decoding: workers parse each record themselves."""
    return message.body


def make_producer(bootstrap: str, *, client_id: str = "courier") -> AIOKafkaProducer:
    """An idempotent, acks=all producer: a retried send never reorders or doubles."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_request_size=DLQ_MAX_MESSAGE_BYTES,
        request_timeout_ms=30_000,
    )


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A record to publish."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = ()


STUCK: tuple[type[KafkaError], ...] = (
    OutOfOrderSequenceNumber,
    DuplicateSequenceNumber,
    InvalidProducerEpoch,
)
"""Errors after which an idempotent aiokafka producer never sends again.

A broker restart can leave the producer's sequence numbers out of step with
the broker's; aiokafka then fails every later send of that partition with
the same error and does not reset itself. A new producer gets a new
producer id and starts over."""


class SharedProducer:
    """The process's one producer, replaced when it is stuck (see :data:`STUCK`)."""

    def __init__(self, make: Callable[[], AIOKafkaProducer]) -> None:
        self._make = make
        self._producer = make()
        self._generation = 0
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send_all(self, records: Sequence[Outgoing]) -> None:
        """Send in order and wait until the broker has acknowledged every one.

        One idempotent producer keeps the order of records that share a key,
        since they go to one partition through one in-order connection. A
        stuck producer is replaced and the error raised, so that the caller
        retries the whole batch (a repeat, never a loss).
        """
        producer, generation = self._producer, self._generation
        try:
            futures = [
                await producer.send(
                    r.topic, value=r.value, key=r.key, headers=list(r.headers)
                )
                for r in records
            ]
            await asyncio.gather(*futures)
        except STUCK:
            await self._renew(generation)
            raise

    async def _renew(self, generation: int) -> None:
        async with self._lock:
            if generation != self._generation:
                return  # another caller already replaced it
            old = self._producer
            fresh = self._make()
            await fresh.start()
            self._producer, self._generation = fresh, generation + 1
        log.warning("producer.renewed", generation=generation + 1)
        with contextlib.suppress(Exception):
            # Its stuck batches can never be acknowledged: do not wait long.
            await asyncio.wait_for(old.stop(), timeout=5.0)


@contextlib.asynccontextmanager
async def producing(bootstrap: str, client_id: str) -> AsyncIterator[SharedProducer]:
    """A started :class:`SharedProducer` for a command's lifetime, stopped after."""
    producer = SharedProducer(lambda: make_producer(bootstrap, client_id=client_id))
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def commit(
    consumer: AIOKafkaConsumer, records: Sequence[Record | ConsumerRecord[Any, Any]]
) -> dict[TopicPartition, int]:
    """Commit, per partition, the offset after the last of ``records``."""
    nxt: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        nxt[tp] = max(nxt.get(tp, 0), r.offset + 1)
    if nxt:
        await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in nxt.items()})

    return nxt


async def _await_leaders(
    admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 30.0
) -> None:
    """Wait until every partition of ``names`` has a leader, so that the first
    produce does not bounce off a partition that is still being created."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        ready = all(
            t.get("error_code", 0) == 0
            and t.get("partitions")
            and all(p.get("leader", -1) >= 0 for p in t["partitions"])
            for t in described
        )
        if ready or asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(0.1)


def rewind(
    consumer: AIOKafkaConsumer, records: Sequence[Record | ConsumerRecord[Any, Any]]
) -> None:
    """Seek each partition back to the first of ``records``, to fetch them again."""
    first: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        first[tp] = min(first.get(tp, r.offset), r.offset)
    for tp, offset in first.items():
        if tp in consumer.assignment():
            consumer.seek(tp, offset)


@dataclass(frozen=True, slots=True)
class TopicState:
    """One of Courier's topics as the broker has it after :func:`ensure_topics`."""

    name: str
    partitions: int
    created: bool


def _admin(bootstrap: str, timeout_ms: int = 40_000) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="courier-admin",
        request_timeout_ms=timeout_ms,
    )


async def _partition_counts(
    admin: AIOKafkaAdminClient, names: list[str]
) -> dict[str, int]:
    # Only names that exist: a metadata request for a missing topic makes a
    # broker with auto.create.topics.enable create it, with its defaults.
    described = await admin.describe_topics(names)

    return {t["topic"]: len(t["partitions"]) for t in described if not t["error_code"]}


async def _raise_dlq_limit(admin: AIOKafkaAdminClient, dlq: str) -> None:
    """Raise an existing DLQ's ``max.message.bytes`` to Courier's value.

    A DLQ made by someone else (or by a broker that creates topics on first
    use) has the broker's default of about 1 MB, so a record near the inbound
    limit could never be dead-lettered. Kafka's AlterConfigs replaces a
    topic's whole set of overrides, so the others are sent back unchanged.
    """
    (described,) = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, dlq)]
    )
    (resource,) = described.to_object()["resources"]
    if resource["error_code"]:
        raise KafkaError(
            f"could not read the config of {dlq}: error {resource['error_code']}"
        )
    entries = {e["config_names"]: e for e in resource["config_entries"]}
    current = entries.get("max.message.bytes", {}).get("config_value")
    if current is not None and int(current) >= DLQ_MAX_MESSAGE_BYTES:
        return
    overrides = {
        name: e["config_value"]
        for name, e in entries.items()
        if e.get("config_source") == _DYNAMIC_TOPIC_CONFIG
        and e["config_value"] is not None
    }
    overrides["max.message.bytes"] = str(DLQ_MAX_MESSAGE_BYTES)
    (altered,) = await admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, dlq, overrides)]
    )
    (result,) = altered.to_object()["resources"]
    if result["error_code"]:
        raise KafkaError(
            f"could not raise max.message.bytes of {dlq} to "
            f"{DLQ_MAX_MESSAGE_BYTES}: error {result['error_code']} "
            f"{result['error_message'] or ''}".rstrip()
        )
    log.warning(
        "topics.dlq_limit_raised",
        topic=dlq,
        max_message_bytes=DLQ_MAX_MESSAGE_BYTES,
        was=current,
    )


async def ensure_topics(
    bootstrap: str, topics: Topics, partitions: int
) -> list[TopicState]:
    """Create Courier's topics if missing and fit an existing DLQ's size limit.

    Returns every topic with the partition count the broker reports, which
    for a topic that already existed may differ from ``partitions``.
    """
    admin = _admin(bootstrap)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=1,
                topic_configs=(
                    {"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)}
                    if name == topics.dlq
                    else {}
                ),
            )
            for name in topics.all
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
            await _await_leaders(admin, [t.name for t in wanted])
        if topics.dlq in existing:
            await _raise_dlq_limit(admin, topics.dlq)
        created = {t.name for t in wanted}
        counts = await _partition_counts(
            admin, [n for n in topics.all if n in existing or n in created]
        )
    finally:
        await admin.close()

    return [
        TopicState(name, counts.get(name, 0), name in created) for name in topics.all
    ]


async def require_topics(bootstrap: str, names: Iterable[str]) -> None:
    """Raise :class:`TopicsMissing` unless every topic exists; create none."""
    admin = _admin(bootstrap)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    missing = [name for name in names if name not in existing]
    if missing:
        raise TopicsMissing(missing)


async def partitions_of(
    bootstrap: str, topic: str, timeout_ms: int = 40_000
) -> list[TopicPartition]:
    """The partitions of ``topic``; raise :class:`TopicsMissing` if there is none.

    Never creates the topic, even on a broker that creates topics on first use.
    """
    admin = _admin(bootstrap, timeout_ms)
    try:
        await admin.start()
        return await _described(admin, topic)
    finally:
        await admin.close()


async def _described(admin: AIOKafkaAdminClient, topic: str) -> list[TopicPartition]:
    if topic not in set(await admin.list_topics()):
        raise TopicsMissing([topic])
    described = await admin.describe_topics([topic])
    found = [t for t in described if t.get("topic") == topic and not t["error_code"]]
    if not found:
        raise TopicsMissing([topic])

    return sorted(TopicPartition(topic, p["partition"]) for p in found[0]["partitions"])


async def topic_size(bootstrap: str, topic: str) -> int:
    """How many records ``topic`` holds now (end minus start, over partitions)."""
    tps = await partitions_of(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        await consumer.start()
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
    finally:
        await consumer.stop()

    return sum(ends[tp] - starts[tp] for tp in tps)


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """Where a consumer group stands on one partition."""

    topic: str
    partition: int
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return self.end - self.committed


class LagReader:
    """An admin client and a consumer kept open for repeated lag readings.

    The clients start on the first reading and are dropped after a failed
    one, to start afresh on the next. Do not cancel a reading from outside:
    aiokafka (0.14) leaks its bootstrap connection when cancelled while it
    starts; each request gives up after ``timeout_ms`` instead.
    """

    def __init__(self, bootstrap: str, timeout_ms: int = 40_000) -> None:
        self.bootstrap = bootstrap
        self.timeout_ms = timeout_ms
        self._clients: tuple[AIOKafkaAdminClient, AIOKafkaConsumer] | None = None

    async def _open(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._clients is None:
            admin = _admin(self.bootstrap, self.timeout_ms)
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=None,
                request_timeout_ms=self.timeout_ms,
            )
            try:
                await admin.start()
                await consumer.start()
            except BaseException:
                await consumer.stop()
                await admin.close()
                raise
            self._clients = (admin, consumer)

        return self._clients

    async def lag(self, group: str, topic: str) -> list[PartitionLag]:
        """The group's committed offset against the end, per partition of
        ``topic``. A partition the group never committed counts from 0."""
        admin, consumer = await self._open()
        try:
            tps = await _described(admin, topic)
            committed = await admin.list_consumer_group_offsets(group)
            ends = await consumer.end_offsets(tps)
        except Exception:
            await self.close()
            raise
        rows = []
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            rows.append(PartitionLag(tp.topic, tp.partition, done, ends[tp]))

        return rows

    async def close(self) -> None:
        if self._clients is not None:
            admin, consumer = self._clients
            self._clients = None
            await consumer.stop()
            await admin.close()


async def group_lag(
    bootstrap: str, group: str, topic: str, timeout_ms: int = 40_000
) -> list[PartitionLag]:
    """One reading of :class:`LagReader`, with clients of its own."""
    reader = LagReader(bootstrap, timeout_ms)
    try:
        return await reader.lag(group, topic)
    finally:
        await reader.close()
