"""The naive pipeline the benchmark measures Courier against.

The same workers, contracts and storage documents as Courier, driven the way
a first version would be: a FastStream per-message subscriber per worker,
each record handled on its own (its lookups, its write and its publish each
awaited before the next record), its offset committed before the next one,
and no directory cache. Run it as ``python -m bench.naive`` with the same
``COURIER_*`` settings as ``courier run all``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy

from storage import Store
from workers.app import WORKERS, Process
from workers.context import Context
from workers.kafka import (
    Record,
    SharedProducer,
    ensure_topics,
    lenient_parser,
    make_producer,
    raw_decoder,
)
from workers.log import configure
from workers.runtime import Runner
from workers.settings import Settings


def build(settings: Settings) -> FastStream:
    """A FastStream app with one per-message subscriber per worker."""
    broker = KafkaBroker(settings.kafka_bootstrap_servers, logger=None)
    runners: dict[str, Runner] = {}
    stopping = asyncio.Event()

    def handler(name: str) -> Callable[[KafkaMessage], Awaitable[None]]:
        async def handle(message: KafkaMessage) -> None:
            record = Record.from_consumer(message.raw_message)
            await runners[name].run([record], message.consumer)

        return handle

    for name in WORKERS:
        broker.subscriber(
            *Process.topics_of(settings, name),
            group_id=settings.group(name),
            ack_policy=AckPolicy.MANUAL,
            auto_offset_reset="earliest",
            parser=lenient_parser,
            decoder=raw_decoder,
        )(handler(name))

    async def start() -> None:
        store = Store.connect(
            settings.mongodb_uri.get_secret_value(), settings.mongodb_database
        )
        await store.detect()
        await ensure_topics(
            settings.kafka_bootstrap_servers, settings.topics, settings.partitions
        )
        producer = SharedProducer(
            lambda: make_producer(settings.kafka_bootstrap_servers)
        )
        await producer.start()
        # No cache: every record reads its sender and conversation.
        ctx = Context(settings=settings, store=store, producer=producer)
        for name, worker in WORKERS.items():
            runners[name] = Runner(
                worker(ctx),
                producer,
                settings.topics.dlq,
                retry_initial_s=settings.retry_initial_s,
                retry_max_s=settings.retry_max_s,
                record_attempts=settings.record_attempts,
                stopping=stopping,
            )

    return FastStream(broker, on_startup=[start], logger=None)


def main() -> None:
    settings = Settings()
    configure(settings.log_level, settings.log_format)
    asyncio.run(build(settings).run())


if __name__ == "__main__":
    main()
