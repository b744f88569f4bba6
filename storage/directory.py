"""Users and conversations, the directory every message refers to.

Both repositories promise the same thing: an upsert is idempotent, and a
profile never goes back to an older one. When an event carries
``updated_at``, the stored document is replaced only if it is not newer,
whatever order the events arrive in; an event without ``updated_at`` replaces
what is stored (last write wins, which is publish order within a partition).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from pymongo.operations import ReplaceOne

from contracts import ConversationUpserted, UserUpserted
from storage.mongo import Document, Store, find_by_ids

E = TypeVar("E", UserUpserted, ConversationUpserted)


def _newest(events: Sequence[E]) -> list[E]:
    """Collapse a batch to one event per id: the newest, else the last."""
    chosen: dict[str, E] = {}
    for event in events:
        held = chosen.get(event.id)
        if (
            held is None
            or event.updated_at is None
            or held.updated_at is None
            or event.updated_at >= held.updated_at
        ):
            chosen[event.id] = event

    return list(chosen.values())


def _guarded_replace(
    doc: Document, updated_at: datetime | None
) -> ReplaceOne[Document]:
    query: dict[str, Any] = {"_id": doc["_id"]}
    if updated_at is not None:
        # No older-or-equal document matches when a newer one is stored, so the
        # upsert then tries to insert and fails on _id: that duplicate key
        # means "stale", and is ignored.
        query["$or"] = [{"updated_at": {"$lte": updated_at}}, {"updated_at": None}]

    return ReplaceOne(query, doc, upsert=True)


class _Directory(Generic[E]):
    name: str

    def __init__(self, store: Store) -> None:
        self.store = store
        self.collection = store.collection(self.name)

    def to_document(self, event: E) -> Document:
        raise NotImplementedError

    async def upsert_many(self, events: Sequence[E]) -> list[E]:
        """Store each profile unless a newer one is stored; return what was kept."""
        chosen = _newest(events)
        if not self.store.guarded_writes:
            chosen = await self._drop_stale(chosen)
            ops = [
                ReplaceOne({"_id": e.id}, self.to_document(e), upsert=True)
                for e in chosen
            ]
        else:
            ops = [_guarded_replace(self.to_document(e), e.updated_at) for e in chosen]
        await self.store.bulk_write(self.collection, ops, ignore_duplicates=True)

        return chosen

    async def _drop_stale(self, events: list[E]) -> list[E]:
        # FerretDB scans for any filter beyond _id (see Store.guarded_writes),
        # so there the age check reads first; each id has one writer at a
        # time, since directory events are keyed by that id.
        timed = [e.id for e in events if e.updated_at is not None]
        stored = await find_by_ids(
            self.collection, timed, self.store.lookup, projection={"updated_at": 1}
        )
        fresh = []
        for e in events:
            held = stored.get(e.id, {}).get("updated_at")
            if e.updated_at is None or held is None or held <= e.updated_at:
                fresh.append(e)

        return fresh

    async def get_many(self, ids: Sequence[str]) -> dict[str, Document]:
        return await find_by_ids(self.collection, ids, self.store.lookup)


class UserRepository(_Directory[UserUpserted]):
    """The ``users`` collection: ``_id`` is the user id."""

    name = "users"

    def to_document(self, event: UserUpserted) -> Document:
        return {
            "_id": event.id,
            "display_name": event.display_name,
            "avatar_url": event.avatar_url,
            "is_bot": event.is_bot,
            "updated_at": event.updated_at,
            "event_id": event.event_id,
        }


class ConversationRepository(_Directory[ConversationUpserted]):
    """The ``conversations`` collection: ``_id`` is the conversation id."""

    name = "conversations"

    def to_document(self, event: ConversationUpserted) -> Document:
        return {
            "_id": event.id,
            "title": event.title,
            "kind": event.kind.value,
            "participant_ids": list(dict.fromkeys(event.participant_ids)),
            "updated_at": event.updated_at,
            "event_id": event.event_id,
        }
