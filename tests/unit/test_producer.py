"""workers.kafka.SharedProducer replaces an idempotent producer that is stuck."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, OutOfOrderSequenceNumber

from workers.kafka import Outgoing, SharedProducer


class Producer:
    """Stands in for AIOKafkaProducer: fails its sends with ``error``, if any."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.sent: list[str] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, **_: Any) -> asyncio.Future[None]:
        await asyncio.sleep(0)  # let concurrent senders reach this point too
        if self.error is not None:
            raise self.error
        self.sent.append(topic)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def shared(*errors: Exception | None) -> tuple[SharedProducer, list[Producer]]:
    made: list[Producer] = []
    pending = list(errors)

    def make() -> Any:
        made.append(Producer(pending.pop(0) if pending else None))
        return made[-1]

    return SharedProducer(make), made


RECORDS = [Outgoing("t", key=b"k", value=b"v")]


async def test_a_stuck_producer_is_replaced_and_the_error_still_raised() -> None:
    """The failing batch raises (so it is retried); the retry uses a new one."""
    producer, made = shared(OutOfOrderSequenceNumber())
    await producer.start()

    with pytest.raises(OutOfOrderSequenceNumber):
        await producer.send_all(RECORDS)
    await producer.send_all(RECORDS)

    assert 2 == len(made)
    assert (True, True) == (made[0].stopped, made[1].started)
    assert ["t"] == made[1].sent


async def test_concurrent_failures_replace_the_producer_once() -> None:
    """Two batches that hit the same stuck producer renew it only once."""
    producer, made = shared(OutOfOrderSequenceNumber())
    await producer.start()

    results = await asyncio.gather(
        producer.send_all(RECORDS), producer.send_all(RECORDS), return_exceptions=True
    )

    assert all(isinstance(r, OutOfOrderSequenceNumber) for r in results)
    assert 2 == len(made)


async def test_an_ordinary_broker_error_keeps_the_producer() -> None:
    """A connection error is the producer's own to retry: no new producer."""
    producer, made = shared(KafkaConnectionError())
    await producer.start()

    with pytest.raises(KafkaConnectionError):
        await producer.send_all(RECORDS)

    assert 1 == len(made)
