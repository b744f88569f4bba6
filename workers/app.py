"""The composition root: settings, clients and FastStream apps, built once.

``build_app(settings, ["directory", "status", "enrichment"])`` returns a
FastStream application whose Kafka broker has one batch subscriber per worker,
each in its own consumer group, with manual commits driven by
:class:`workers.runtime.Runner`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from wsgiref.simple_server import WSGIServer

import structlog
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.middlewares import AckPolicy

from contracts import DirectoryChanged, MessageChanged, MessageDTO
from storage import Lookup, ParkedRecord, Store
from workers import observe
from workers.cache import DirectoryCache
from workers.context import Context
from workers.directory import DirectoryWorker
from workers.docs import CourierAsyncAPI
from workers.enrichment import EnrichmentWorker
from workers.kafka import (
    Record,
    SharedProducer,
    ensure_topics,
    lenient_parser,
    make_producer,
    raw_decoder,
)
from workers.runtime import TRANSIENT, Rejected, Runner
from workers.settings import Settings
from workers.status import StatusWorker

log = structlog.get_logger("courier.app")

STARTUP_PATIENCE_S = 60.0
"""How long a starting worker waits for the store and the broker to answer."""


WORKERS: dict[str, type[DirectoryWorker | StatusWorker | EnrichmentWorker]] = {
    "directory": DirectoryWorker,
    "status": StatusWorker,
    "enrichment": EnrichmentWorker,
}

DESCRIPTIONS = {
    "directory": "Stores users and conversations, and re-drives parked records.",
    "status": "Stores messages and receipts and advances each message's status.",
    "enrichment": "Publishes a DTO per status change, with sender and conversation.",
}


class Process:
    """What one worker process holds between start-up and shut-down."""

    def __init__(self, settings: Settings, names: Sequence[str]) -> None:
        unknown = sorted(set(names) - set(WORKERS))
        if unknown:
            raise ValueError(
                f"Unknown worker {', '.join(unknown)}; choose from "
                f"{', '.join(WORKERS)} or all."
            )
        self.settings = settings
        self.names = list(names)
        self.stopping = asyncio.Event()
        self.ctx: Context | None = None
        self.runners: dict[str, Runner] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.lag: asyncio.Task[None] | None = None
        self.health = observe.Health()
        self.http: WSGIServer | None = None
        self.broker = KafkaBroker(
            settings.kafka_bootstrap_servers,
            client_id=f"courier-{'-'.join(self.names)}",
            graceful_timeout=settings.shutdown_grace_s,
            logger=None,
            middlewares=[
                KafkaPrometheusMiddleware(registry=observe.REGISTRY, app_name="courier")
            ],
        )
        for name in self.names:
            self._subscribe(name)
        self._declare_publishers()

    @staticmethod
    def topics_of(settings: Settings, name: str) -> list[str]:
        """The topics the named worker consumes."""
        t = settings.topics
        return {
            "directory": [t.users, t.conversations],
            "status": [t.messages, t.receipts],
            "enrichment": [t.message_changes],
        }[name]

    def _subscribe(self, name: str) -> None:
        s = self.settings
        subscriber = self.broker.subscriber(
            *self.topics_of(s, name),
            group_id=s.group(name),
            batch=True,
            max_records=s.batch_max_records,
            batch_timeout_ms=s.batch_timeout_ms,
            max_partition_fetch_bytes=s.fetch_partition_bytes,
            ack_policy=AckPolicy.MANUAL,
            auto_offset_reset="earliest",
            # Range deals each topic out alike, so partition k of both of a
            # worker's topics goes to one member: a message and its receipts
            # (same key) have one writer. Round-robin stays listed so that a
            # group of members from before this change can still agree.
            partition_assignment_strategy=(
                RangePartitionAssignor,
                RoundRobinPartitionAssignor,
            ),
            parser=lenient_parser,
            decoder=raw_decoder,
            title=f"courier.{name}",
            description=DESCRIPTIONS[name],
        )

        @subscriber
        async def handle(message: KafkaMessage) -> None:
            records = [Record.from_consumer(r) for r in message.raw_message]
            await self.runners[name].run(records, message.consumer)

    def _declare_publishers(self) -> None:
        """Name what the workers publish, for the AsyncAPI document.

        Workers send through their own idempotent producer (see
        :mod:`workers.context`), not through these publishers.
        """
        t = self.settings.topics
        published = [
            (
                "directory",
                "directory-changes",
                t.directory_changes,
                "Internal: a user or conversation was stored; every worker "
                "process drops its cached copy. Keyed by the entity id.",
                DirectoryChanged,
            ),
            (
                "status",
                "message-changes",
                t.message_changes,
                "Internal: a stored message owes DTOs up to this version. "
                "Keyed by conversation id.",
                MessageChanged,
            ),
            (
                "enrichment",
                "client-messages",
                t.client_messages,
                "For clients: one MessageDTO per status change of a message, "
                "keyed by conversation id, at least once; drop repeats by "
                "(id, version).",
                MessageDTO,
            ),
        ]
        for worker, name, topic, description, schema in published:
            if worker in self.names:
                self.broker.publisher(
                    topic,
                    title=f"courier.{worker}:{name}",
                    description=description,
                    schema=schema,
                )
        self.broker.publisher(
            t.dlq,
            title="courier:dead-letters",
            description="A record no worker can take: the original key, value "
            "and headers byte for byte, plus courier.dlq.* headers (reason, "
            "error, worker, topic, partition, offset, timestamp_ms, at_ms). "
            "The value is whatever the original held, so it has no schema.",
        )

    async def _prepare(self, store: Store) -> Lookup:
        """Ask the store what it is, create indexes and topics; retry blips."""
        s = self.settings
        deadline = asyncio.get_running_loop().time() + STARTUP_PATIENCE_S
        attempt = 0
        while True:
            try:
                chosen = await store.detect()
                await store.ensure_indexes()
                await ensure_topics(s.kafka_bootstrap_servers, s.topics, s.partitions)
                return chosen
            except TRANSIENT as error:
                attempt += 1
                if asyncio.get_running_loop().time() > deadline:
                    raise
                log.warning("process.start_retrying", error=str(error), attempt=attempt)
                await asyncio.sleep(min(s.retry_max_s, s.retry_initial_s * 2**attempt))

    async def start(self) -> None:
        s = self.settings
        lookup = None if s.mongodb_lookup == "auto" else Lookup(s.mongodb_lookup)
        store = Store.connect(
            s.mongodb_uri.get_secret_value(), s.mongodb_database, lookup=lookup
        )
        chosen = await self._prepare(store)
        producer = SharedProducer(lambda: make_producer(s.kafka_bootstrap_servers))
        await producer.start()
        cache = None
        if s.directory_cache_size and {"status", "enrichment"} & set(self.names):
            cache = DirectoryCache(
                s.kafka_bootstrap_servers,
                s.topics.directory_changes,
                s.directory_cache_size,
            )
            await cache.start()
        self.ctx = Context(settings=s, store=store, producer=producer, cache=cache)
        for name in self.names:
            worker = WORKERS[name](self.ctx)
            self.runners[name] = Runner(
                worker,
                producer,
                s.topics.dlq,
                retry_initial_s=s.retry_initial_s,
                retry_max_s=s.retry_max_s,
                record_attempts=s.record_attempts,
                stopping=self.stopping,
            )
        if "status" in self.names:
            self.tasks.append(asyncio.create_task(self._sweep_parked()))
        if s.http_port:
            try:
                self.http = observe.serve(s.http_host, s.http_port, self.health)
            except OSError as error:
                raise RuntimeError(
                    f"Cannot serve /metrics on {s.http_host}:{s.http_port} ({error}); "
                    "set COURIER_HTTP_PORT to a free port, or 0 for none."
                ) from None
        self.tasks.append(asyncio.create_task(self.health.watch(self._probe)))
        self.lag = asyncio.create_task(
            observe.watch_lag(
                s.kafka_bootstrap_servers,
                [
                    (s.group(name), topic)
                    for name in self.names
                    for topic in self.topics_of(s, name)
                ],
                s.lag_refresh_s,
                self.stopping,
            )
        )
        log.info(
            "process.started",
            workers=self.names,
            lookup=chosen.value,
            database=s.mongodb_database,
            topic_prefix=s.topic_prefix,
        )

    async def _probe(self) -> None:
        assert self.ctx is not None
        await self.ctx.store.ping()
        if not await self.broker.ping(3.0):
            raise ConnectionError("the Kafka broker does not answer")

    async def begin_shutdown(self) -> None:
        # FastStream waits up to the grace period for in-flight batches; a
        # batch still retrying a dead store after that is abandoned unacked.
        asyncio.get_running_loop().call_later(
            self.settings.shutdown_grace_s, self.stopping.set
        )

    async def stop(self) -> None:
        self.stopping.set()
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.lag is not None:
            # It returns by itself once stopping is set; cancelling it while
            # a client connects would leave a socket open.
            # Bounded at twice the timeout of one lag request.
            await asyncio.wait([self.lag], timeout=2 * observe.LAG_TIMEOUT_MS / 1000)
            self.lag.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.lag
        observe.stop(self.http)
        if self.ctx is not None:
            if self.ctx.cache is not None:
                await self.ctx.cache.stop()
            await self.ctx.producer.stop()
            await self.ctx.store.close()
        log.info("process.stopped", workers=self.names)

    async def _sweep_parked(self) -> None:
        """Dead-letter records that waited longer than the bound.

        A record whose every missing entity is stored by now is re-driven
        instead: a worker that crashed between parking it and noting it
        (or between storing the entity and re-driving) left it behind.
        """
        s = self.settings
        assert self.ctx is not None
        runner = self.runners["status"]
        while not self.stopping.is_set():
            await asyncio.sleep(s.park_sweep_s)
            try:
                limit = datetime.now(UTC) - timedelta(seconds=s.park_timeout_s)
                expired = await self.ctx.parking.older_than(limit)
                if not expired:
                    continue
                here = await self.ctx.stored(r for p in expired for r in p.missing)
                back: list[ParkedRecord] = []
                late: list[ParkedRecord] = []
                for p in expired:
                    (back if set(p.missing) <= here else late).append(p)
                await self.ctx.send_back(back)
                expired = late
                if not expired:
                    continue
                await runner.dead_letter(
                    [
                        Rejected(
                            Record(
                                topic=p.topic,
                                partition=p.partition,
                                offset=p.offset,
                                key=p.key,
                                value=p.value,
                                headers=p.headers,
                                timestamp_ms=p.timestamp_ms,
                            ),
                            f"waited {s.park_timeout_s:g} s for "
                            f"{', '.join(m for m in p.missing if m not in here)}, "
                            "which never arrived",
                            "MissingReference",
                        )
                        for p in expired
                    ]
                )
                await self.ctx.parking.remove(p.id for p in expired)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("parked.sweep_failed", error=str(error))


def build_app(settings: Settings, names: Sequence[str]) -> tuple[FastStream, Process]:
    """A FastStream app running the named workers in this process."""
    process = Process(settings, names)
    app = FastStream(
        process.broker,
        on_startup=[process.start],
        on_shutdown=[process.begin_shutdown],
        after_shutdown=[process.stop],
        logger=None,
        specification=CourierAsyncAPI(
            process.broker, settings.topics, version("courier")
        ),
    )

    return app, process
