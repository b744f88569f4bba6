"""The loop every worker shares: decode, handle, retry, dead-letter, commit.

A worker is a :class:`Handler`: it gets a batch of records and returns the
records it could not take, each with a reason. The runner around it owns the
delivery guarantees:

* offsets are committed only after the handler returned, every dead letter
  is acknowledged by the broker, and everything the handler published is too;
* a transient fault (store or broker unreachable, a lost write race) retries
  the whole batch with capped exponential backoff until it clears, so the
  committed offset never passes a record that is not durable;
* any other exception is narrowed down to the record that causes it, which is
  tried ``record_attempts`` times and then dead-lettered with the error;
* a dead letter keeps the original key, value and headers byte for byte and
  adds ``courier.dlq.*`` headers with the reason and the record's origin;
  one the broker refuses as too large for the dead-letter topic goes there
  with an empty value and ``courier.dlq.value_dropped`` (the original size),
  rather than holding its partition back for ever: the original can still be
  read at its topic, partition and offset while retention keeps it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import (
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)

from storage import StoreUnavailable, WriteConflict
from workers import observe
from workers.kafka import Outgoing, Record, SharedProducer, commit, rewind

log = structlog.get_logger("courier.runtime")

TRANSIENT: tuple[type[BaseException], ...] = (
    StoreUnavailable,
    WriteConflict,
    KafkaError,
    asyncio.TimeoutError,
    ConnectionError,
)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record the handler will never accept, and why."""

    record: Record
    reason: str
    error: str = "ContractError"


class Handler(Protocol):
    name: str

    async def handle(self, records: Sequence[Record]) -> list[Rejected]:
        """Make the batch durable; return what must be dead-lettered."""
        ...


class Stopping(Exception):
    """The process is shutting down: leave the batch uncommitted."""


TOO_LARGE: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)
"""The broker's refusals of a record too large for the topic: retrying them
the same way can never succeed."""

VALUE_DROPPED = "courier.dlq.value_dropped"
"""Header on a dead letter sent without its value: the original size in bytes."""


def dlq_headers(
    rejected: Rejected, worker: str, *, dropped: bool = False
) -> list[tuple[str, bytes]]:
    r = rejected.record
    meta = {
        "courier.dlq.reason": rejected.reason,
        "courier.dlq.error": rejected.error,
        "courier.dlq.worker": worker,
        "courier.dlq.topic": r.topic,
        "courier.dlq.partition": str(r.partition),
        "courier.dlq.offset": str(r.offset),
        "courier.dlq.timestamp_ms": str(r.timestamp_ms),
        "courier.dlq.at_ms": str(int(time.time() * 1000)),
    }
    original = [(k, v if v is not None else b"") for k, v in r.headers]
    # Keep a record of which original headers were null: Kafka has no way to
    # send a null header value back, so replay restores them from this list.
    nulls = [k for k, v in r.headers if v is None]
    if nulls:
        meta["courier.dlq.null_headers"] = json.dumps(nulls)
    if dropped:
        meta[VALUE_DROPPED] = str(len(r.value or b""))

    return [*original, *((k, v.encode("utf-8")) for k, v in meta.items())]


class Runner:
    """Drives one :class:`Handler` for one subscriber."""

    def __init__(
        self,
        handler: Handler,
        producer: SharedProducer,
        dlq_topic: str,
        *,
        retry_initial_s: float,
        retry_max_s: float,
        record_attempts: int,
        stopping: asyncio.Event,
    ) -> None:
        self.handler = handler
        self.producer = producer
        self.dlq_topic = dlq_topic
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.record_attempts = record_attempts
        self.stopping = stopping
        self.log = log.bind(worker=handler.name)

    async def _pause(self, attempt: int) -> None:
        delay = min(self.retry_max_s, self.retry_initial_s * 2 ** min(attempt, 30))
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=delay)
        except TimeoutError:
            return
        raise Stopping

    async def _until_done(self, records: Sequence[Record]) -> list[Rejected]:
        """Handle ``records``, retrying transient faults until they clear."""
        attempt = 0
        while True:
            if self.stopping.is_set():
                raise Stopping
            try:
                return await self.handler.handle(records)
            except TRANSIENT as error:
                attempt += 1
                observe.RETRIES.labels(self.handler.name).inc()
                # One line per doubling of the wait, not one per try.
                if attempt & (attempt - 1) == 0:
                    self.log.warning(
                        "batch.retrying",
                        error=f"{type(error).__name__}: {error}",
                        attempt=attempt,
                        records=len(records),
                        first_offset=records[0].offset,
                        partition=records[0].partition,
                        topic=records[0].topic,
                    )
                await self._pause(attempt)

    async def _isolated(self, records: Sequence[Record]) -> list[Rejected]:
        """Handle records one at a time to find the one that breaks a batch."""
        rejected: list[Rejected] = []
        for record in records:
            for attempt in range(1, self.record_attempts + 1):
                try:
                    rejected.extend(await self._until_done([record]))
                    break
                except (Stopping, asyncio.CancelledError):
                    raise
                except Exception as error:
                    if attempt == self.record_attempts:
                        self.log.error(
                            "record.failed",
                            topic=record.topic,
                            partition=record.partition,
                            offset=record.offset,
                            error=f"{type(error).__name__}: {error}",
                            attempts=attempt,
                        )
                        rejected.append(
                            Rejected(
                                record,
                                f"{type(error).__name__}: {error}",
                                error=type(error).__name__,
                            )
                        )
                    else:
                        await self._pause(attempt)

        return rejected

    def _letter(self, rejected: Rejected, *, dropped: bool = False) -> Outgoing:
        return Outgoing(
            self.dlq_topic,
            key=rejected.record.key,
            value=b"" if dropped else rejected.record.value,
            headers=tuple(dlq_headers(rejected, self.handler.name, dropped=dropped)),
        )

    async def _send(self, letters: Sequence[Outgoing]) -> None:
        """Send until the broker has every letter; only a size refusal escapes."""
        attempt = 0
        while True:
            try:
                await self.producer.send_all(letters)
                return
            except TOO_LARGE:
                raise
            except KafkaError as error:
                attempt += 1
                self.log.warning("dlq.retrying", error=str(error), attempt=attempt)
                await self._pause(attempt)

    async def dead_letter(self, rejected: Sequence[Rejected]) -> None:
        """Publish dead letters and wait until the broker has every one."""
        if not rejected:
            return
        try:
            await self._send([self._letter(r) for r in rejected])
        except TOO_LARGE:
            # One at a time, to find which the topic cannot take; those that
            # were already acknowledged are sent twice, which replay tolerates.
            for r in rejected:
                try:
                    await self._send([self._letter(r)])
                except TOO_LARGE as error:
                    await self._send([self._letter(r, dropped=True)])
                    self.log.error(
                        "dlq.value_dropped",
                        topic=r.record.topic,
                        partition=r.record.partition,
                        offset=r.record.offset,
                        bytes=len(r.record.value or b""),
                        error=f"{type(error).__name__}: {error}",
                        hint="the original stays readable at its topic, partition "
                        "and offset while retention keeps it",
                    )
        for r in rejected:
            self.log.warning(
                "event.dead_lettered",
                topic=r.record.topic,
                partition=r.record.partition,
                offset=r.record.offset,
                reason=r.reason,
            )

    async def run(self, records: Sequence[Record], consumer: AIOKafkaConsumer) -> None:
        """Process one fetched batch and commit it; raise ``Stopping`` to abandon."""
        if not records:
            return
        started = time.perf_counter()
        try:
            try:
                rejected = await self._until_done(records)
            except (Stopping, asyncio.CancelledError):
                raise
            except Exception:
                rejected = await self._isolated(records)
            await self.dead_letter(rejected)
        except BaseException:
            # The batch is not durable: rewind so that no later commit can
            # pass it, then let the error end this round.
            rewind(consumer, records)
            raise
        try:
            await commit(consumer, records)
        except KafkaError as error:
            # The work is durable, so a later commit that covers these
            # offsets loses nothing; a new owner after a rebalance redoes
            # them, which the idempotent writes make harmless.
            self.log.warning("commit.failed", error=f"{type(error).__name__}: {error}")
        elapsed = time.perf_counter() - started
        observe.BATCH_SECONDS.labels(self.handler.name).observe(elapsed)
        observe.BATCH_RECORDS.labels(self.handler.name).observe(len(records))
        dead = {id(r.record) for r in rejected}
        for r in records:
            outcome = "dead_lettered" if id(r) in dead else "handled"
            observe.RECORDS.labels(self.handler.name, r.topic, outcome).inc()
        self.log.info(
            "batch.done",
            records=len(records),
            dead_lettered=len(rejected),
            topic=records[0].topic,
            partition=records[0].partition,
            first_offset=records[0].offset,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
