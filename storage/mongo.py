"""The connection to the MongoDB-wire store and the helpers all repositories share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, nullcontext
from enum import StrEnum
from typing import Any

from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WTimeoutError,
)
from pymongo.operations import DeleteOne, InsertOne, ReplaceOne, UpdateOne

from storage.errors import StorageError, StoreUnavailable

Document = dict[str, Any]
WriteOp = InsertOne[Document] | ReplaceOne[Document] | UpdateOne | DeleteOne

DUPLICATE_KEY = 11000


class Lookup(StrEnum):
    """How to fetch many documents by ``_id``.

    Real MongoDB answers ``{"_id": {"$in": [...]}}`` from the ``_id`` index;
    FerretDB v1 scans the whole collection for ``$in`` but pushes a single
    ``_id`` equality down, so there many concurrent point reads are faster.
    """

    IN = "in"
    POINT = "point"


def translate(error: PyMongoError) -> StorageError:
    """Map a driver error onto Courier's storage errors."""
    if isinstance(error, ConnectionFailure | ExecutionTimeout | WTimeoutError):
        return StoreUnavailable(f"The store did not answer: {error}")
    if isinstance(error, OperationFailure) and error.code in {91, 189, 11600, 11602}:
        # Shutdown in progress, primary stepped down, interrupted.
        return StoreUnavailable(f"The store is restarting: {error}")

    return StorageError(f"The store refused the operation: {error}")


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Run a block with driver errors translated at the storage boundary."""
    try:
        yield
    except BulkWriteError:
        raise
    except PyMongoError as error:
        raise translate(error) from error


BULK_CHUNK = 50
"""The most statements Courier sends in one write command to MongoDB.

pymongo itself splits only at the server's limit of 100,000; smaller
commands keep one slow batch from holding a connection for long.
"""

FERRET_CHUNK = 10
FERRET_WRITES_IN_FLIGHT = 2
"""Statements per write command, and write commands in flight per process,
on FerretDB.

FerretDB v1.24 (``handler.updateDocument``) keeps the query of every
statement of an update command open until the whole command is done, each
on one of the 100 connections of its SQLite pool, and every statement then
needs one more connection for its transaction. Once the matched statements
of the commands in flight reach 100, every one of them waits for a
connection that none will give back: the server stops answering until it
is restarted (a goroutine dump showed two commands of 50 holding all 100).
A single command of 100 statements does it alone. So on FerretDB a process
keeps at most 2 x 10 such queries open; 4 processes stay well under 100.
"""


async def _bulk_part(
    collection: AsyncCollection[Document],
    ops: Sequence[WriteOp],
    ignore_duplicates: bool,
) -> set[int]:
    duplicates: set[int] = set()
    start = 0
    while start < len(ops):
        batch = list(ops[start:])
        try:
            async with translated():
                await collection.bulk_write(batch, ordered=False)
        except BulkWriteError as error:
            errors = error.details.get("writeErrors", [])
            bad = [e for e in errors if e.get("code") != DUPLICATE_KEY]
            if bad or not errors:
                raise StorageError(
                    f"A bulk write to {collection.name} failed: "
                    f"{bad[0].get('errmsg') if bad else error}"
                ) from error
            if not ignore_duplicates:
                duplicates.update(start + int(e["index"]) for e in errors)
            start += max(int(e["index"]) for e in errors) + 1
            continue
        break

    return duplicates


MAX_POOL = 32
"""Connections per process: lookups are bounded (below), and bulk writes go
one command at a time, so more would only queue inside the server."""

POINT_CONCURRENCY = 16
"""The most point reads one lookup has in flight at once.

Unbounded, a batch of 500 ids opened as many connections as the driver's
pool allows, in every worker at once, and the local FerretDB v1 stopped
answering altogether under the benchmark's load; a few in flight already
keep its one SQLite writer busy."""


async def find_by_ids(
    collection: AsyncCollection[Document],
    ids: Sequence[str],
    lookup: Lookup,
    projection: Mapping[str, Any] | None = None,
) -> dict[str, Document]:
    """Fetch the documents with these ``_id`` values; absent ones are left out."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    async with translated():
        # Even one id goes by equality on FerretDB: an ``$in`` of one scans.
        if lookup is Lookup.IN:
            cursor = collection.find({"_id": {"$in": wanted}}, projection)
            docs = await cursor.to_list(None)
        else:
            gate = asyncio.Semaphore(POINT_CONCURRENCY)

            async def one(key: str) -> Document | None:
                async with gate:
                    return await collection.find_one({"_id": key}, projection)

            found = await asyncio.gather(*(one(i) for i in wanted))
            docs = [d for d in found if d is not None]

    return {d["_id"]: d for d in docs}


class Store:
    """One database of the store, with the collections Courier uses."""

    def __init__(
        self,
        client: AsyncMongoClient[Document],
        database: str,
        lookup: Lookup | None = None,
    ) -> None:
        self.client = client
        self.db: AsyncDatabase[Document] = client[database]
        self._lookup = lookup
        self.write_chunk = BULK_CHUNK
        self._write_gate: asyncio.Semaphore | None = None
        self.guarded_writes = True
        """Whether conditional writes may filter on more than ``_id``.

        FerretDB v1 pushes only a bare ``_id`` equality down to SQLite; any
        other condition makes each write scan the collection (85 ms a write
        at 1,700 messages in our measurement, against 4 ms by ``_id``), so
        on FerretDB the revision guard is left out; see ``storage.messages``.
        """

    @classmethod
    def connect(
        cls,
        uri: str,
        database: str,
        *,
        lookup: Lookup | None = None,
        timeout_ms: int = 10_000,
    ) -> Store:
        """Build a client; no I/O happens until the first operation."""
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            uri,
            tz_aware=True,
            appname="courier",
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=timeout_ms * 3,
            maxPoolSize=MAX_POOL,
        )

        return cls(client, database, lookup)

    @property
    def lookup(self) -> Lookup:
        return self._lookup or Lookup.IN

    def collection(self, name: str) -> AsyncCollection[Document]:
        return self.db[name]

    async def bulk_write(
        self,
        collection: AsyncCollection[Document],
        ops: Sequence[WriteOp],
        *,
        ignore_duplicates: bool,
    ) -> set[int]:
        """Run ``ops`` unordered; return the indexes that hit a duplicate key.

        The ops go in commands this store can take (see
        :data:`FERRET_CHUNK`), at most that many commands in flight. FerretDB
        v1 ignores ``ordered=False`` and stops at the first error, so the
        ops after an error are sent again. Every op Courier sends is
        idempotent (guarded by ``_id``, a revision or a timestamp), so
        re-sending one that did run is harmless on a store that did carry on.
        """
        duplicates: set[int] = set()
        for first in range(0, len(ops), self.write_chunk):
            part = ops[first : first + self.write_chunk]
            async with self._write_gate or nullcontext():
                found = await _bulk_part(collection, part, ignore_duplicates)
            duplicates.update(first + i for i in found)

        return duplicates

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the store answers."""
        async with translated():
            await self.db.command("ping")

    async def detect(self) -> Lookup:
        """Pick the lookup and write strategies from what the server is."""
        async with translated():
            info = await self.db.command("buildInfo")
        ferret = any(k.startswith("ferretdb") for k in info)
        self.guarded_writes = not ferret
        if ferret:
            self.write_chunk = FERRET_CHUNK
            self._write_gate = asyncio.Semaphore(FERRET_WRITES_IN_FLIGHT)
        if self._lookup is None:
            self._lookup = Lookup.POINT if ferret else Lookup.IN

        return self._lookup

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries need; safe to run on every start."""
        plan: dict[str, list[IndexModel]] = {
            "messages": [
                IndexModel(
                    [("conversation_id", 1), ("timestamp", 1)],
                    name="conversation_time",
                ),
                IndexModel([("sender_id", 1), ("timestamp", 1)], name="sender_time"),
            ],
            "conversations": [
                IndexModel([("participant_ids", 1)], name="participants"),
            ],
            "parked": [
                IndexModel([("missing", 1)], name="missing"),
                IndexModel([("parked_at", 1)], name="parked_at"),
            ],
        }
        async with translated():
            for name, indexes in plan.items():
                # Only create what is missing: FerretDB v1 panics on a second
                # createIndexes of an index that already exists.
                have = {i["name"] async for i in await self.db[name].list_indexes()}
                missing = [i for i in indexes if i.document["name"] not in have]
                if missing:
                    await self.db[name].create_indexes(missing)

    async def close(self) -> None:
        await self.client.close()
