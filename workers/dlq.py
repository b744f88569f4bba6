"""Reading and replaying the dead-letter topic."""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from workers.kafka import Headers, Outgoing, partitions_of, producing

PREFIX = "courier.dlq."
REPLAYED = "courier.replayed_from_dlq"
"""Header on a replayed record: the PARTITION:OFFSET of the dead letter."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of the dead-letter topic, with where it came from and why."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers

    def meta(self, name: str) -> str:
        for k, v in self.headers:
            if k == PREFIX + name:
                return (v or b"").decode("utf-8", "replace")
        return ""

    @property
    def ref(self) -> str:
        return f"{self.partition}:{self.offset}"

    def original_headers(self) -> list[tuple[str, bytes | None]]:
        """The record's own headers, null values restored."""
        nulls = set(json.loads(self.meta("null_headers") or "[]"))
        return [
            (k, None if k in nulls else v)
            for k, v in self.headers
            if not k.startswith(PREFIX) and k != REPLAYED
        ]


async def read_dead_letters(bootstrap: str, topic: str) -> list[DeadLetter]:
    """Every record the dead-letter topic holds now, oldest first per partition."""
    tps = await partitions_of(bootstrap, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    letters: list[DeadLetter] = []
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if ends[tp] > await consumer.position(tp)}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for records in batch.values():
                letters.extend(
                    DeadLetter(
                        r.partition,
                        r.offset,
                        r.key,
                        r.value,
                        tuple((k, v) for k, v in r.headers),
                    )
                    for r in records
                )
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()

    return letters


async def replay(bootstrap: str, letters: list[DeadLetter]) -> int:
    """Publish each dead letter again to its original topic, as it arrived."""
    async with producing(bootstrap, "courier-dlq-replay") as producer:
        await producer.send_all(
            [
                Outgoing(
                    topic=letter.meta("topic"),
                    key=letter.key,
                    value=letter.value,
                    headers=(
                        *letter.original_headers(),
                        (REPLAYED, letter.ref.encode()),
                    ),
                )
                for letter in letters
            ]
        )

    return len(letters)
