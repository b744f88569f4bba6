"""A per-process cache of users and conversations, kept honest by Kafka.

Workers resolve a whole batch of sender and conversation ids at once; this
cache answers what it holds and sends one store lookup per kind for the
rest. It never serves an entry older than a change the directory worker has
confirmed before the batch began:

* The directory worker stores a change, then announces it on
  ``chat.internal.directory-changes.v1``, and only then commits.
* Every process reads that topic with no consumer group (each process needs
  every announcement) from where it stood when the process started, and
  drops the entries named. A later lookup reads the store, which already
  holds the change.
* Before each batch, :meth:`DirectoryCache.sync` asks the broker for the end
  of the topic and waits until the reader has passed it. If it cannot get
  there in time (the broker is slow, the reader stalled), the whole cache is
  dropped and the batch reads the store: slower, never stale.

An entry can only be stale for a change that is stored but not yet
announced, the moment between the directory worker's store write and its
publish.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts import ContractError, DirectoryChanged, decode
from storage.mongo import Document
from workers.kafka import partitions_of
from workers.observe import CACHE_DROPS, CACHE_LOOKUPS

log = structlog.get_logger("courier.cache")

Loader = Callable[[Sequence[str]], Awaitable[dict[str, Document]]]


V = TypeVar("V")


class Lru(Generic[V]):
    """Values by id, least recently used first, at most ``limit`` of them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.entries: OrderedDict[str, V] = OrderedDict()

    def get(self, key: str) -> V | None:
        value = self.entries.get(key)
        if value is not None:
            self.entries.move_to_end(key)

        return value

    def put(self, key: str, value: V) -> None:
        if self.limit <= 0:
            return
        self.entries[key] = value
        self.entries.move_to_end(key)
        while len(self.entries) > self.limit:
            self.entries.popitem(last=False)


class DirectoryCache:
    """Users and conversations by id, dropped when the directory announces."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        limit: int,
        sync_timeout_s: float = 2.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.sync_timeout_s = sync_timeout_s
        self.kinds: dict[str, Lru[Document]] = {
            "user": Lru(limit),
            "conversation": Lru(limit),
        }
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._task: asyncio.Task[None] | None = None
        self._moved = asyncio.Event()
        self._drops = 0
        """Counts drops, so a load that overlapped one is not cached."""

    async def start(self) -> None:
        """Start reading announcements from the current end of the topic."""
        self._partitions = await partitions_of(self.bootstrap, self.topic)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
        )
        await consumer.start()
        consumer.assign(self._partitions)
        await consumer.seek_to_end(*self._partitions)
        for tp in self._partitions:
            # Resolve the positions now, so that everything announced after
            # start() returns is read.
            await consumer.position(tp)
        self._consumer = consumer
        self._task = asyncio.create_task(self._read(), name="directory-cache")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=200)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # keep reading; sync() guards the gaps
                log.warning("cache.read_failed", error=str(error))
                await asyncio.sleep(1.0)
                continue
            for records in batch.values():
                for record in records:
                    self._drop(record.value)
            self._moved.set()

    def _drop(self, value: bytes | None) -> None:
        try:
            change = decode(DirectoryChanged, value)
        except ContractError as error:
            # Not ours to dead-letter; forgetting everything is always safe.
            log.warning("cache.bad_announcement", error=str(error))
            self.clear()
            return
        self._drops += 1
        self.kinds[change.kind].entries.pop(change.id, None)

    def clear(self) -> None:
        self._drops += 1
        for entries in self.kinds.values():
            entries.entries.clear()

    async def sync(self) -> None:
        """Wait until every announcement made so far has been applied."""
        if self._consumer is None:
            return
        consumer = self._consumer
        try:
            async with asyncio.timeout(self.sync_timeout_s):
                ends = await consumer.end_offsets(self._partitions)
                while True:
                    # Clear before looking, so a move after the look wakes us.
                    self._moved.clear()
                    positions = {tp: await consumer.position(tp) for tp in ends}
                    if all(positions[tp] >= end for tp, end in ends.items()):
                        break
                    await self._moved.wait()
        except Exception as error:  # a timeout, or the broker: forget all
            CACHE_DROPS.inc()
            log.warning("cache.sync_failed", error=str(error) or type(error).__name__)
            self.clear()

    async def get_many(
        self, kind: str, ids: Sequence[str], load: Loader
    ) -> dict[str, Document]:
        """The documents of ``ids`` that exist, from the cache or ``load``."""
        entries = self.kinds[kind]
        found: dict[str, Document] = {}
        wanted: list[str] = []
        for key in dict.fromkeys(ids):
            doc = entries.get(key)
            if doc is None:
                wanted.append(key)
            else:
                found[key] = doc
        CACHE_LOOKUPS.labels(kind, "hit").inc(len(found))
        CACHE_LOOKUPS.labels(kind, "miss").inc(len(wanted))
        if wanted:
            drops = self._drops
            loaded = await load(wanted)
            # A change announced while the load ran may be newer than what it
            # read: hand the documents out, but keep them only if none came.
            if drops == self._drops:
                for key, doc in loaded.items():
                    entries.put(key, doc)
            found |= loaded

        return found
