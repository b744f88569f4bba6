"""The directory worker: users and conversations into their collections.

After each batch it re-drives the records parked for the entities it just
stored, by publishing them again to their original topic.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from contracts import ContractError, ConversationUpserted, UserUpserted, decode
from workers.context import Context, Outgoing
from workers.kafka import Record
from workers.runtime import Rejected

log = structlog.get_logger("courier.directory")

REDRIVE_HEADER = "courier.redriven"


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
        refs = [f"user:{u.id}" for u in users]
        refs += [f"conversation:{c.id}" for c in conversations]
        await self.redrive(refs)

        return rejected

    async def redrive(self, refs: list[str]) -> int:
        """Publish again every record parked for one of ``refs``."""
        parked = await self.ctx.parking.waiting_for(refs)
        if not parked:
            return 0
        await self.ctx.publish(
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
        await self.ctx.parking.remove(p.id for p in parked)
        log.info("parked.redriven", records=len(parked), refs=len(refs))

        return len(parked)
