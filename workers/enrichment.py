"""The enrichment worker: one DTO per status change, sender and conversation embedded.

It reads the internal changes topic, loads the messages named there, and for
every version a message reached that is not published yet sends a
:class:`MessageDTO` to the client topic, keyed by conversation. Once the
broker has acknowledged them, the highest version is recorded in the
``published`` collection (this worker's only write); a crash before that
repeats the DTOs with the same version, which consumers drop by version.
"""

from __future__ import annotations

from collections.abc import Sequence

from contracts import (
    ContractError,
    ConversationKind,
    ConversationSummary,
    MessageChanged,
    MessageDTO,
    MissingReference,
    Status,
    UserSummary,
    decode,
    encode,
)
from storage import MessageState
from storage.mongo import Document
from workers.cache import Lru
from workers.context import Context
from workers.kafka import Outgoing, Record
from workers.observe import DTOS
from workers.runtime import Rejected

_BY_HEIGHT = list(Status)

REMEMBERED = 50_000
"""Messages whose published version a process keeps in memory."""


def build_dto(
    state: MessageState, version: int, user: Document, conversation: Document
) -> MessageDTO:
    """The DTO of ``state`` at ``version``, from stored directory documents."""
    sub = state.submission
    if sub is None:
        raise ValueError(f"message {state.id} has no submission yet")

    return MessageDTO(
        id=state.id,
        version=version,
        sender=UserSummary(
            id=user["_id"],
            display_name=user["display_name"],
            avatar_url=user.get("avatar_url"),
        ),
        conversation=ConversationSummary(
            id=conversation["_id"],
            title=conversation["title"],
            kind=ConversationKind(conversation["kind"]),
        ),
        content=sub.content,
        type=sub.type,
        status=_BY_HEIGHT[version],
        timestamp=sub.timestamp,
        reply_to_id=sub.reply_to_id,
    )


class EnrichmentWorker:
    name = "enrichment"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.published: Lru[int] = Lru(REMEMBERED)
        """The versions this process confirmed, newest last; this worker is
        the only writer of them."""

    async def handle(self, records: Sequence[Record]) -> list[Rejected]:
        rejected: list[Rejected] = []
        order: dict[str, None] = {}
        for record in records:
            try:
                change = decode(MessageChanged, record.value)
            except ContractError as error:
                rejected.append(Rejected(record, str(error), type(error).__name__))
                continue
            order[change.message_id] = None

        states = await self.ctx.messages.load_many(
            order,
            {
                i: self.published.entries[i]
                for i in order
                if i in self.published.entries
            },
        )
        due = [
            states[i]
            for i in order
            if i in states
            and states[i].submission is not None
            and states[i].unpublished
        ]
        senders = {s.submission.sender_id for s in due if s.submission}
        users, conversations = await self.ctx.directory(
            sorted(senders), sorted({s.conversation_id for s in due})
        )

        out: list[Outgoing] = []
        published: dict[str, int] = {}
        for state in due:
            assert state.submission is not None
            user = users.get(state.submission.sender_id)
            conversation = conversations.get(state.conversation_id)
            if user is None or conversation is None:
                lacks = [f"user:{state.submission.sender_id}"] if user is None else []
                if conversation is None:
                    lacks.append(f"conversation:{state.conversation_id}")
                # The status worker parks messages until both exist, so this
                # means a directory entry vanished; never publish half a DTO.
                raise MissingReference(lacks)
            for version in state.unpublished:
                dto = build_dto(state, version, user, conversation)
                out.append(
                    Outgoing(
                        topic=self.ctx.topics.client_messages,
                        key=state.conversation_id.encode(),
                        value=encode(dto),
                    )
                )
            published[state.id] = max(state.unpublished)

        await self.ctx.publish(out)
        DTOS.inc(len(out))
        await self.ctx.messages.mark_published(published)
        for message_id, version in published.items():
            self.published.put(message_id, version)

        return rejected
