"""The directory worker: users and conversations into their collections.

After each batch it announces what it stored on the internal
directory-changes topic (so that worker processes drop cached entries, see
:mod:`workers.cache`), then re-drives the records parked for those entities
by publishing them again to their original topic.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from contracts import (
    ContractError,
    ConversationUpserted,
    DirectoryChanged,
    UserUpserted,
    decode,
    encode,
)
from workers.context import Context
from workers.kafka import Outgoing, Record
from workers.runtime import Rejected

log = structlog.get_logger("courier.directory")


class DirectoryWorker:
    name = "directory"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def handle(self, records: Sequence[Record]) -> list[Rejected]:
        users: list[UserUpserted] = []
        conversations: list[ConversationUpserted] = []
        rejected: list[Rejected] = []
        for record in records:
            try:
                if record.topic == self.ctx.topics.users:
                    users.append(decode(UserUpserted, record.value))
                else:
                    conversations.append(decode(ConversationUpserted, record.value))
            except ContractError as error:
                rejected.append(Rejected(record, str(error), type(error).__name__))

        if users:
            await self.ctx.users.upsert_many(users)
        if conversations:
            await self.ctx.conversations.upsert_many(conversations)
        changed = [DirectoryChanged(kind="user", id=u.id) for u in users]
        changed += [
            DirectoryChanged(kind="conversation", id=c.id) for c in conversations
        ]
        # Announce only after the store holds the change: a cache that drops
        # the entry then reads it back new (see workers.cache).
        await self.ctx.publish(
            [
                Outgoing(
                    topic=self.ctx.topics.directory_changes,
                    key=c.id.encode(),
                    value=encode(c),
                )
                for c in dict.fromkeys(changed)
            ]
        )
        await self.ctx.redrive([f"{c.kind}:{c.id}" for c in changed])

        return rejected
