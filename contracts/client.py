"""For upstream services: publish Courier's inbound events, checked and keyed.

:class:`CourierClient` builds each event's model before anything leaves the
process, so a value that breaks the contract raises
:class:`~contracts.errors.ValidationFailed` in the caller and nothing is
sent. It keys every record as the contract says (the user id on
``chat.users.v1``, the conversation id everywhere else, so that one
conversation's events stay in order on one partition) and generates an
``event_id`` when none is given.

The client does no I/O of its own: it hands each record to a producer that
the caller owns and configures (bootstrap servers, security, ``acks``).
aiokafka's ``AIOKafkaProducer`` fits as it is; so does any object with an
awaitable ``send_and_wait(topic, value=..., key=...)``::

    producer = AIOKafkaProducer(bootstrap_servers=..., acks="all")
    await producer.start()
    courier = CourierClient(producer)
    await courier.publish_message(
        id="m-1", sender_id="u-1", conversation_id="c-1", content="hi"
    )

Each call returns once the producer's ``send_and_wait`` has returned, which
for aiokafka means the broker acknowledged the record.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from contracts.codec import describe, encode
from contracts.errors import ValidationFailed
from contracts.events import (
    ConversationKind,
    ConversationUpserted,
    MessageSubmitted,
    MessageType,
    ReceiptReported,
    ReceiptStatus,
    UserUpserted,
)
from contracts.topics import Topics

Event = UserUpserted | ConversationUpserted | MessageSubmitted | ReceiptReported
E = TypeVar("E", UserUpserted, ConversationUpserted, MessageSubmitted, ReceiptReported)


class Producer(Protocol):
    """What the client needs of a Kafka producer (aiokafka's has it)."""

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> Any: ...


def new_event_id() -> str:
    """A fresh, unique event id."""
    return str(uuid.uuid4())


class CourierClient:
    """Publishes users, conversations, messages and receipts for Courier."""

    def __init__(self, producer: Producer, *, topics: Topics | None = None) -> None:
        self.producer = producer
        self.topics = topics or Topics()

    async def send(self, event: Event) -> Event:
        """Publish an event built elsewhere, on its topic with its key."""
        t = self.topics
        if isinstance(event, UserUpserted):
            topic, key = t.users, event.id
        elif isinstance(event, ConversationUpserted):
            topic, key = t.conversations, event.id
        elif isinstance(event, MessageSubmitted):
            topic, key = t.messages, event.conversation_id
        else:
            topic, key = t.receipts, event.conversation_id
        await self.producer.send_and_wait(
            topic, value=encode(event), key=key.encode("utf-8")
        )

        return event

    async def _publish(
        self, model: type[E], event_id: str | None, fields: dict[str, Any]
    ) -> E:
        """Build ``model`` from ``fields``, or raise without sending; then send."""
        try:
            event = model.model_validate(
                {"event_id": event_id or new_event_id(), **fields}
            )
        except ValidationError as error:
            raise ValidationFailed(
                f"{model.__name__} breaks the contract, so it was not sent: "
                f"{describe(error)}"
            ) from None
        await self.send(event)

        return event

    async def upsert_user(
        self,
        id: str,
        display_name: str,
        *,
        avatar_url: str | None = None,
        is_bot: bool = False,
        updated_at: datetime | str | int | float | None = None,
        event_id: str | None = None,
    ) -> UserUpserted:
        """Create or change a user (the full profile); keyed by the user id."""
        return await self._publish(
            UserUpserted,
            event_id,
            {
                "id": id,
                "display_name": display_name,
                "avatar_url": avatar_url,
                "is_bot": is_bot,
                "updated_at": updated_at,
            },
        )

    async def upsert_conversation(
        self,
        id: str,
        title: str,
        kind: ConversationKind | str,
        participant_ids: Sequence[str],
        *,
        updated_at: datetime | str | int | float | None = None,
        event_id: str | None = None,
    ) -> ConversationUpserted:
        """Create or change a conversation; keyed by the conversation id."""
        return await self._publish(
            ConversationUpserted,
            event_id,
            {
                "id": id,
                "title": title,
                "kind": kind,
                "participant_ids": list(participant_ids),
                "updated_at": updated_at,
            },
        )

    async def publish_message(
        self,
        id: str,
        sender_id: str,
        conversation_id: str,
        content: str,
        *,
        type: MessageType | str = MessageType.TEXT,
        timestamp: datetime | str | int | float | None = None,
        reply_to_id: str | None = None,
        event_id: str | None = None,
    ) -> MessageSubmitted:
        """Submit a message (ids only); ``timestamp`` defaults to now."""
        return await self._publish(
            MessageSubmitted,
            event_id,
            {
                "id": id,
                "sender_id": sender_id,
                "conversation_id": conversation_id,
                "content": content,
                "type": type,
                "timestamp": timestamp if timestamp is not None else _now(),
                "reply_to_id": reply_to_id,
            },
        )

    async def publish_receipt(
        self,
        message_id: str,
        conversation_id: str,
        recipient_id: str,
        status: ReceiptStatus | str,
        *,
        timestamp: datetime | str | int | float | None = None,
        event_id: str | None = None,
    ) -> ReceiptReported:
        """Report that a recipient got, read or lost a message."""
        return await self._publish(
            ReceiptReported,
            event_id,
            {
                "message_id": message_id,
                "conversation_id": conversation_id,
                "recipient_id": recipient_id,
                "status": status,
                "timestamp": timestamp if timestamp is not None else _now(),
            },
        )


def _now() -> datetime:
    return datetime.now(UTC)
