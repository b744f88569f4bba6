"""The parking place: records that wait for an entity that is not stored yet.

A message whose sender or conversation is unknown is not dropped and not
stored half-resolved: the original record is parked here with the list of
what it waits for (``"user:u-1"``, ``"conversation:c-1"``, ``"message:m-1"``).
When the directory stores one of those entities, or the status worker stores
the message a receipt waits for, the parked records are re-driven: published
again to their original topic. A record parked for longer than the configured
bound is dead-lettered instead, naming what never arrived.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bson import Binary
from pymongo.operations import DeleteOne, ReplaceOne

from storage.mongo import (
    Document,
    Store,
    WriteOp,
    find_by_ids,
    translated,
)


@dataclass(frozen=True, slots=True)
class ParkedRecord:
    """A Kafka record kept byte for byte, and why it waits."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    missing: tuple[str, ...]
    parked_at: datetime
    timestamp_ms: int = 0
    """The original record's own timestamp."""

    @property
    def id(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


def _doc(record: ParkedRecord) -> Document:
    return {
        "_id": record.id,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": Binary(record.key) if record.key is not None else None,
        "value": Binary(record.value) if record.value is not None else None,
        # Documents, not pairs: FerretDB v1 cannot store nested arrays.
        "headers": [
            {"k": k, "v": Binary(v) if v is not None else None}
            for k, v in record.headers
        ],
        "missing": list(record.missing),
        "parked_at": record.parked_at,
        "timestamp_ms": record.timestamp_ms,
    }


def _record(doc: Document) -> ParkedRecord:
    return ParkedRecord(
        topic=doc["topic"],
        partition=doc["partition"],
        offset=doc["offset"],
        key=bytes(doc["key"]) if doc.get("key") is not None else None,
        value=bytes(doc["value"]) if doc.get("value") is not None else None,
        headers=tuple(
            (h["k"], bytes(h["v"]) if h["v"] is not None else None)
            for h in doc["headers"]
        ),
        missing=tuple(doc["missing"]),
        parked_at=doc["parked_at"],
        timestamp_ms=int(doc.get("timestamp_ms", 0)),
    )


class ParkingRepository:
    """The ``parked`` collection, keyed by topic, partition and offset."""

    name = "parked"

    def __init__(self, store: Store) -> None:
        self.store = store
        self.collection = store.collection(self.name)

    async def park(self, records: Sequence[ParkedRecord]) -> None:
        """Keep the records; parking the same record twice keeps one copy."""
        ops: list[WriteOp] = [
            ReplaceOne({"_id": r.id}, _doc(r), upsert=True) for r in records
        ]
        await self.store.bulk_write(self.collection, ops, ignore_duplicates=True)

    async def load(self, ids: Iterable[str]) -> list[ParkedRecord]:
        """The parked records with these ids that are still parked."""
        found = await find_by_ids(self.collection, list(ids), self.store.lookup)

        return [_record(d) for d in found.values()]

    async def waiting_for(self, refs: Iterable[str]) -> list[ParkedRecord]:
        """Parked records that wait for any of ``refs``."""
        wanted = list(dict.fromkeys(refs))
        if not wanted:
            return []
        async with translated():
            cursor = self.collection.find({"missing": {"$in": wanted}})
            docs = await cursor.to_list(None)

        return [_record(d) for d in docs]

    async def older_than(self, moment: datetime) -> list[ParkedRecord]:
        async with translated():
            cursor = self.collection.find({"parked_at": {"$lt": moment}})
            docs = await cursor.to_list(None)

        return [_record(d) for d in docs]

    async def count(self) -> int:
        async with translated():
            return await self.collection.count_documents({})

    async def remove(self, ids: Iterable[str]) -> None:
        """Unpark these records; one delete by ``_id`` each, as FerretDB v1
        would scan the whole place for an ``$in``."""
        ops: list[WriteOp] = [DeleteOne({"_id": i}) for i in dict.fromkeys(ids)]
        await self.store.bulk_write(self.collection, ops, ignore_duplicates=False)
