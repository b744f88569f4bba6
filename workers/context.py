"""What every worker is handed: settings, repositories and the producer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import structlog

from contracts import Topics
from storage import (
    ConversationRepository,
    MessageRepository,
    ParkedRecord,
    ParkingRepository,
    Store,
    UserRepository,
)
from storage.mongo import Document
from workers.cache import DirectoryCache
from workers.kafka import Outgoing, SharedProducer
from workers.settings import Settings

log = structlog.get_logger("courier.context")

REDRIVE_HEADER = "courier.redriven"
"""Names the parked record a re-driven record was, on its way back."""


@dataclass
class Context:
    """The shared parts of one worker process, built by the composition root."""

    settings: Settings
    store: Store
    producer: SharedProducer
    cache: DirectoryCache | None = None
    users: UserRepository = field(init=False)
    conversations: ConversationRepository = field(init=False)
    messages: MessageRepository = field(init=False)
    parking: ParkingRepository = field(init=False)

    def __post_init__(self) -> None:
        self.users = UserRepository(self.store)
        self.conversations = ConversationRepository(self.store)
        self.messages = MessageRepository(self.store)
        self.parking = ParkingRepository(self.store)

    @property
    def topics(self) -> Topics:
        return self.settings.topics

    async def directory(
        self, user_ids: Sequence[str], conversation_ids: Sequence[str]
    ) -> tuple[dict[str, Document], dict[str, Document]]:
        """The stored users and conversations among these ids, for one batch."""
        if self.cache is None:
            return await asyncio.gather(
                self.users.get_many(user_ids),
                self.conversations.get_many(conversation_ids),
            )
        await self.cache.sync()

        return await asyncio.gather(
            self.cache.get_many("user", user_ids, self.users.get_many),
            self.cache.get_many(
                "conversation", conversation_ids, self.conversations.get_many
            ),
        )

    async def redrive(self, refs: Sequence[str]) -> int:
        """Publish again every record parked for one of ``refs`` (``user:u-1``,
        ``conversation:c-1``, ``message:m-1``), then unpark them."""
        return await self.send_back(await self.parking.waiting_for(refs))

    async def redrive_ids(self, ids: Sequence[str]) -> int:
        """Publish again the parked records with these ids that are still
        parked, then unpark them; a point read each, no scan."""
        if not ids:
            return 0
        return await self.send_back(await self.parking.load(ids))

    async def send_back(self, parked: Sequence[ParkedRecord]) -> int:
        if not parked:
            return 0
        await self.publish(
            [
                Outgoing(
                    topic=p.topic,
                    key=p.key,
                    value=p.value,
                    headers=(
                        *(h for h in p.headers if h[0] != REDRIVE_HEADER),
                        (REDRIVE_HEADER, p.id.encode()),
                    ),
                )
                for p in parked
            ]
        )
        await self.parking.remove(p.id for p in parked)
        log.info("parked.redriven", records=len(parked))

        return len(parked)

    async def stored(self, refs: Iterable[str]) -> set[str]:
        """Which of ``refs`` (``user:u-1``, ``conversation:c-1``,
        ``message:m-1``) are stored now; a message counts once submitted."""
        ids: dict[str, list[str]] = {"user": [], "conversation": [], "message": []}
        for ref in dict.fromkeys(refs):
            kind, _, key = ref.partition(":")
            if kind in ids:
                ids[kind].append(key)
        users = await self.users.get_many(ids["user"])
        conversations = await self.conversations.get_many(ids["conversation"])
        messages = await self.messages.load_many(ids["message"], with_published=False)

        return (
            {f"user:{i}" for i in users}
            | {f"conversation:{i}" for i in conversations}
            | {f"message:{i}" for i, m in messages.items() if m.submission is not None}
        )

    async def publish(self, records: Sequence[Outgoing]) -> None:
        """Send in order and wait until the broker has acknowledged every one."""
        await self.producer.send_all(records)
