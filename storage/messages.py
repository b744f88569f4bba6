"""The ``messages`` and ``published`` collections, both keyed by message id.

What the repository promises:

* **Keyed by id, written once per batch.** :meth:`MessageRepository.save_many`
  writes each changed state with one conditional write: an insert for a new
  message, or an update guarded by the revision that was read. A concurrent
  writer (another worker during a rebalance) makes the guard fail; the
  message comes back as a conflict for the caller to re-read and apply again,
  and no duplicate-key error escapes.
* **Never backwards.** The guard also requires the stored status height to be
  at most the new one, so even a wrong caller cannot lower a status.

  Known gap, FerretDB only: FerretDB v1 makes any filter beyond ``_id`` scan
  the collection, so there the update is guarded by ``_id`` alone; its
  ``$max`` on ``version`` still makes the status height only rise. Inserts
  still race safely (the loser gets a duplicate key and re-reads), and the
  status fields of a message have one writer at a time because its events
  share a key and so a partition number, which the status worker's range
  assignor gives to one process for both its topics; two status writers
  could only overlap on one message while a rebalance moves that partition.
  :meth:`MessageRepository.hold` touches only ``held`` and the writer token,
  so naming a held receipt never writes stale fields over a stored message.
  The read-back below still reports a write that another writer overwrote.
  Real MongoDB gets the full guard.
* **One writer per document.** Only the status worker writes a message
  document; only the enrichment worker writes the ``published`` document
  that says which DTOs of it are out. FerretDB v1 runs an update as a read
  followed by a write of the whole document, with nothing held in between,
  so two workers updating different fields of one document could still undo
  each other there; with one writer each, nothing overlaps.
* **An outbox without a shared field.** A message lists every version it
  reached; the ``published`` document holds the highest version whose DTO is
  confirmed on Kafka. What is still owed is the difference, read from both
  by :meth:`MessageRepository.load_many`, so a crash between a status write
  and its DTO only repeats a DTO, never loses one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pymongo.operations import InsertOne, UpdateOne

from contracts import MessageType, Progress, Status
from storage.mongo import Document, Store, WriteOp, find_by_ids, translated
from storage.state import MessageState, Submission, new_state

_MERGED = frozenset({"_id", "reached", "held"})
"""Fields a status update merges rather than overwrites."""


def to_document(state: MessageState, rev: int, writer: str) -> Document:
    doc: Document = {
        "_id": state.id,
        "conversation_id": state.conversation_id,
        "status": state.status.value,
        "version": state.version,
        "recipients": list(state.recipients) if state.recipients is not None else None,
        "progress": [
            {
                "recipient_id": rid,
                "delivered": p.delivered,
                "read": p.read,
                "failed": p.failed,
            }
            for rid, p in sorted(state.progress.items())
        ],
        "reached": list(state.reached),
        "held": list(state.held),
        "rev": rev,
        "writer": writer,
    }
    sub = state.submission
    if sub is not None:
        doc |= {
            "sender_id": sub.sender_id,
            "content": sub.content,
            "type": sub.type.value,
            "timestamp": sub.timestamp,
            "reply_to_id": sub.reply_to_id,
        }

    return doc


def from_document(doc: Document, published_version: int = 0) -> MessageState:
    submission = None
    if doc.get("content") is not None:
        submission = Submission(
            sender_id=doc["sender_id"],
            content=doc["content"],
            type=MessageType(doc["type"]),
            timestamp=doc["timestamp"],
            reply_to_id=doc.get("reply_to_id"),
        )
    recipients = doc.get("recipients")

    return MessageState(
        id=doc["_id"],
        conversation_id=doc["conversation_id"],
        submission=submission,
        recipients=tuple(recipients) if recipients is not None else None,
        progress={
            p["recipient_id"]: Progress(
                delivered=p["delivered"], read=p["read"], failed=p["failed"]
            )
            for p in doc.get("progress", [])
        },
        status=Status(doc["status"]),
        reached=tuple(doc.get("reached", [])),
        held=tuple(doc.get("held", [])),
        published_version=published_version,
        rev=int(doc["rev"]),
    )


@dataclass(frozen=True, slots=True)
class SaveResult:
    """What :meth:`MessageRepository.save_many` did."""

    saved: list[MessageState]
    conflicts: list[str]


class MessageRepository:
    """Loads and conditionally writes :class:`MessageState` documents."""

    name = "messages"
    published_name = "published"

    def __init__(self, store: Store) -> None:
        self.store = store
        self.collection = store.collection(self.name)
        self.published = store.collection(self.published_name)

    async def load_many(
        self,
        ids: Iterable[str],
        published: Mapping[str, int] | None = None,
        *,
        with_published: bool = True,
    ) -> dict[str, MessageState]:
        """The stored states, each with the highest version already published.

        ``published`` is what the caller already knows is out (the enrichment
        worker remembers what it confirmed itself); those ids are not read
        from the ``published`` collection. Knowing too little only repeats a
        DTO, so a caller's memory may lag behind, never run ahead. Without
        ``with_published`` nothing is read there and ``published_version``
        is 0.
        """
        known = published or {}
        docs = await find_by_ids(self.collection, list(ids), self.store.lookup)
        if not with_published:
            return {i: from_document(d) for i, d in docs.items()}
        owing = [i for i, d in docs.items() if d.get("reached") and i not in known]
        versions = await self.published_of(owing) | {
            i: v for i, v in known.items() if i in docs
        }

        return {i: from_document(d, versions.get(i, 0)) for i, d in docs.items()}

    async def save_many(
        self,
        states: Sequence[MessageState],
        reached: Mapping[str, Sequence[int]] | None = None,
    ) -> SaveResult:
        """Write each state with a guard on the revision it was read at.

        ``reached`` names, per message, the versions this write reached; they
        are merged into the stored list rather than written over it. Returns the
        states as stored (with their new revision) and the ids that lost a
        race and must be re-read and applied again.
        """
        if not states:
            return SaveResult(saved=[], conflicts=[])
        writer = uuid.uuid4().hex
        ops: list[WriteOp] = []
        for state in states:
            doc = to_document(state, state.rev + 1, writer)
            if state.rev == 0:
                ops.append(InsertOne(doc))
                continue
            guard: dict[str, Any] = {"_id": state.id}
            if self.store.guarded_writes:
                guard |= {"rev": state.rev, "version": {"$lte": state.version}}
            owned = {k: v for k, v in doc.items() if k not in _MERGED}
            # The version (the status height) can only rise, whatever the
            # guard: $max enforces it in the write itself, on FerretDB too.
            del owned["version"]
            update: dict[str, Any] = {
                "$set": owned,
                "$max": {"version": state.version},
            }
            merged: dict[str, Any] = {}
            added = list((reached or {}).get(state.id, ()))
            if added:
                merged["reached"] = {"$each": added}
            if state.held:
                merged["held"] = {"$each": list(state.held)}
            if merged:
                update["$addToSet"] = merged
            ops.append(UpdateOne(guard, update))
        duplicates = await self.store.bulk_write(
            self.collection, ops, ignore_duplicates=False
        )

        # An insert that lost shows as a duplicate key. A bulk result counts
        # an update's matches but does not say which op missed, so read back
        # the revisions and the writer token of the updated ones to tell.
        stored = await find_by_ids(
            self.collection,
            [s.id for s in states if s.rev > 0],
            self.store.lookup,
            projection={"rev": 1, "writer": 1, "held": 1},
        )
        saved: list[MessageState] = []
        conflicts: list[str] = []
        for index, state in enumerate(states):
            held = state.held
            if state.rev == 0:
                won = index not in duplicates
            else:
                found = stored.get(state.id, {})
                won = (
                    found.get("writer") == writer and found.get("rev") == state.rev + 1
                )
                # Another worker may have named more held receipts meanwhile
                # (merged, not overwritten): report the stored list.
                held = tuple(found.get("held", state.held))
            if won:
                saved.append(replace(state, rev=state.rev + 1, held=held))
            else:
                conflicts.append(state.id)

        return SaveResult(saved=saved, conflicts=conflicts)

    async def hold(
        self, held: Mapping[str, tuple[str, Sequence[str]]]
    ) -> dict[str, MessageState]:
        """Name parked receipts on their messages, and return each as stored.

        ``held`` maps a message id to the conversation its receipts name and
        the ids of their parked records. Where no document exists a PENDING
        placeholder is inserted; where one does, only ``held`` (added to) and
        the writer token change, so a message stored meanwhile by another
        worker keeps everything it wrote, and that worker's read-back sees
        the token and applies its events again. The caller checks the
        returned states: one with a submission was stored in between.
        """
        if not held:
            return {}
        writer = uuid.uuid4().hex
        ops: list[WriteOp] = []
        for message_id, (conversation_id, ids) in held.items():
            placeholder = to_document(new_state(message_id, conversation_id), 1, writer)
            for merged in ("_id", "held", "writer"):
                del placeholder[merged]
            ops.append(
                UpdateOne(
                    {"_id": message_id},
                    {
                        "$addToSet": {"held": {"$each": list(ids)}},
                        "$set": {"writer": writer},
                        "$setOnInsert": placeholder,
                    },
                    upsert=True,
                )
            )
        # Two upserts of one new id can race; the loser's op runs again and
        # then finds the document.
        lost = await self.store.bulk_write(
            self.collection, ops, ignore_duplicates=False
        )
        if lost:
            await self.store.bulk_write(
                self.collection, [ops[i] for i in sorted(lost)], ignore_duplicates=False
            )

        return await self.load_many(held, with_published=False)

    async def published_of(self, ids: Sequence[str]) -> dict[str, int]:
        """The highest published version of each of ``ids`` that has one."""
        out = await find_by_ids(self.published, ids, self.store.lookup)

        return {i: int(d.get("version", 0)) for i, d in out.items()}

    async def mark_published(self, published: Mapping[str, int]) -> None:
        """Record that every DTO up to ``version`` of each message is out."""
        ops: list[WriteOp] = [
            UpdateOne({"_id": message_id}, {"$max": {"version": version}}, upsert=True)
            for message_id, version in published.items()
        ]
        # Two upserts of a new id can race; the loser's mark is dropped, which
        # at worst repeats a DTO that downstream drops by its version.
        await self.store.bulk_write(self.published, ops, ignore_duplicates=True)

    async def owed(self) -> list[str]:
        """Ids of submitted messages whose latest DTO is not confirmed yet.

        Reads both collections whole: meant for checks and reports on small
        databases (the demo, the tests), not for a worker's hot path.
        """
        wanted = {"content": {"$ne": None}, "version": {"$gt": 0}}
        async with translated():
            versions = {
                d["_id"]: d["version"]
                async for d in self.collection.find(wanted, {"version": 1})
            }
            out = {
                d["_id"]: d["version"]
                async for d in self.published.find({}, {"version": 1})
            }

        return sorted(i for i, v in versions.items() if out.get(i, 0) < v)

    async def in_conversation(
        self, conversation_id: str, limit: int = 100
    ) -> list[MessageState]:
        """A conversation's messages in time order (uses ``conversation_time``)."""
        cursor = (
            self.collection.find(
                {"conversation_id": conversation_id, "content": {"$ne": None}}
            )
            .sort([("timestamp", 1), ("_id", 1)])
            .limit(limit)
        )

        return [from_document(d) for d in await cursor.to_list(None)]
