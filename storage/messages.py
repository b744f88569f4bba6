"""The ``messages`` collection: one document per message, ``_id`` = message id.

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
  share a key and so a partition; two status writers could only overlap on
  one message while a rebalance moves that partition. The read-back below
  still reports a write that another writer overwrote. Real MongoDB gets the
  full guard.
* **Two owners, disjoint fields.** The status worker writes the message and
  its status and adds versions to the outbox; the enrichment worker only
  removes versions from it and raises ``published_version``. Neither write
  touches the other's fields, so neither can undo the other.
* **An outbox.** Each document lists the versions whose DTO is still owed;
  :meth:`MessageRepository.mark_published` removes them once the DTOs are
  confirmed on Kafka, so a crash in between only repeats a DTO, never loses one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pymongo.operations import InsertOne, UpdateOne

from contracts import MessageType, Progress, Status
from storage.mongo import Document, Store, WriteOp, bulk_write, find_by_ids
from storage.state import MessageState, Submission

_SHARED = frozenset({"_id", "outbox", "published_version"})


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
        "outbox": list(state.outbox),
        "published_version": state.published_version,
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


def from_document(doc: Document) -> MessageState:
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
        outbox=tuple(doc.get("outbox", [])),
        published_version=int(doc.get("published_version", 0)),
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

    def __init__(self, store: Store) -> None:
        self.store = store
        self.collection = store.collection(self.name)

    async def load_many(self, ids: Iterable[str]) -> dict[str, MessageState]:
        docs = await find_by_ids(self.collection, list(ids), self.store.lookup)

        return {i: from_document(d) for i, d in docs.items()}

    async def save_many(
        self,
        states: Sequence[MessageState],
        reached: Mapping[str, Sequence[int]] | None = None,
    ) -> SaveResult:
        """Write each state with a guard on the revision it was read at.

        ``reached`` names, per message, the versions this write reached; they
        are added to the outbox, which the enrichment worker empties, so this
        write never puts back a version whose DTO is already out. Returns the
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
            # The outbox and published_version belong to the enrichment
            # worker once a document exists; leave them to it.
            owned = {k: v for k, v in doc.items() if k not in _SHARED}
            # The version (the status height) can only rise, whatever the
            # guard: $max enforces it in the write itself, on FerretDB too.
            del owned["version"]
            update: dict[str, Any] = {
                "$set": owned,
                "$max": {"version": state.version},
            }
            added = list((reached or {}).get(state.id, ()))
            if added:
                update["$addToSet"] = {"outbox": {"$each": added}}
            ops.append(UpdateOne(guard, update))
        duplicates = await bulk_write(self.collection, ops, ignore_duplicates=False)

        # A bulk result counts matches but does not say which op missed, so
        # read back the revisions and the writer token to tell.
        stored = await find_by_ids(
            self.collection,
            [s.id for s in states],
            self.store.lookup,
            projection={"rev": 1, "writer": 1},
        )
        saved: list[MessageState] = []
        conflicts: list[str] = []
        for index, state in enumerate(states):
            found = stored.get(state.id)
            won = (
                index not in duplicates
                and found is not None
                and found.get("writer") == writer
                and found.get("rev") == state.rev + 1
            )
            if won:
                saved.append(replace(state, rev=state.rev + 1))
            else:
                conflicts.append(state.id)

        return SaveResult(saved=saved, conflicts=conflicts)

    async def mark_published(self, published: dict[str, int]) -> None:
        """Record that every DTO up to ``version`` of each message is out."""
        ops: list[WriteOp] = [
            UpdateOne(
                {"_id": message_id},
                {
                    "$max": {"published_version": version},
                    # FerretDB v1 ignores a $pull with a condition without a
                    # word, so name the versions: there are at most five.
                    "$pullAll": {"outbox": list(range(1, version + 1))},
                },
            )
            for message_id, version in published.items()
        ]
        await bulk_write(self.collection, ops, ignore_duplicates=True)

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
