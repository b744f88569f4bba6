"""Unit tests of workers.cache without a broker (announcements fed by hand)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from contracts import DirectoryChanged, encode
from storage.mongo import Document
from workers.cache import DirectoryCache


def cache(limit: int = 10) -> DirectoryCache:
    return DirectoryCache("127.0.0.1:1", "changes", limit)


class Store:
    """Stands in for a repository's get_many and records what it was asked."""

    def __init__(self, docs: dict[str, Document]) -> None:
        self.docs = docs
        self.asked: list[list[str]] = []

    async def get_many(self, ids: Sequence[str]) -> dict[str, Document]:
        self.asked.append(list(ids))
        return {i: self.docs[i] for i in ids if i in self.docs}


async def test_only_misses_reach_the_store_and_absent_ids_are_not_cached() -> None:
    """A second lookup is served from memory; unknown ids are asked again."""
    c = cache()
    store = Store({"u-1": {"_id": "u-1", "display_name": "Ada"}})

    first = await c.get_many("user", ["u-1", "u-9", "u-1"], store.get_many)
    second = await c.get_many("user", ["u-1", "u-9"], store.get_many)

    assert {"u-1"} == first.keys() == second.keys()
    assert [["u-1", "u-9"], ["u-9"]] == store.asked


async def test_an_announcement_drops_the_entry_it_names() -> None:
    """After a change is announced, the next lookup reads the store again."""
    c = cache()
    store = Store({"u-1": {"_id": "u-1", "display_name": "Ada"}})
    await c.get_many("user", ["u-1"], store.get_many)
    store.docs["u-1"] = {"_id": "u-1", "display_name": "Ada Lovelace"}

    c._drop(encode(DirectoryChanged(kind="user", id="u-1")))
    got = await c.get_many("user", ["u-1"], store.get_many)

    assert "Ada Lovelace" == got["u-1"]["display_name"]


async def test_a_load_that_overlaps_an_announcement_is_not_kept() -> None:
    """A store read that may predate a change is handed out but not cached."""
    c = cache()
    store = Store({"c-1": {"_id": "c-1", "title": "old"}})

    async def slow_load(ids: Sequence[str]) -> dict[str, Document]:
        loaded = await store.get_many(ids)
        c._drop(encode(DirectoryChanged(kind="conversation", id="c-1")))
        await asyncio.sleep(0)
        return loaded

    await c.get_many("conversation", ["c-1"], slow_load)
    await c.get_many("conversation", ["c-1"], store.get_many)

    assert [["c-1"], ["c-1"]] == store.asked


async def test_an_unreadable_announcement_forgets_everything() -> None:
    """Garbage on the changes topic empties the cache rather than guessing."""
    c = cache()
    store = Store({"u-1": {"_id": "u-1"}, "c-1": {"_id": "c-1"}})
    await c.get_many("user", ["u-1"], store.get_many)
    await c.get_many("conversation", ["c-1"], store.get_many)

    c._drop(b"{not json")

    assert {"user": 0, "conversation": 0} == {
        k: len(e.entries) for k, e in c.kinds.items()
    }


async def test_the_least_recently_used_entry_goes_first() -> None:
    """At the limit, the entry not asked for longest is evicted."""
    c = cache(limit=2)
    store = Store({f"u-{i}": {"_id": f"u-{i}"} for i in range(3)})
    await c.get_many("user", ["u-0", "u-1"], store.get_many)
    await c.get_many("user", ["u-0"], store.get_many)
    await c.get_many("user", ["u-2"], store.get_many)

    assert ["u-0", "u-2"] == list(c.kinds["user"].entries)


async def test_a_limit_of_zero_keeps_nothing() -> None:
    """directory_cache_size=0 means every lookup goes to the store."""
    c = cache(limit=0)
    store = Store({"u-1": {"_id": "u-1"}})
    await c.get_many("user", ["u-1"], store.get_many)
    await c.get_many("user", ["u-1"], store.get_many)

    assert [["u-1"], ["u-1"]] == store.asked
