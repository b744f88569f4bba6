"""Upstream publishes through contracts.client; the pipeline answers with DTOs."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from contracts import CourierClient, MessageDTO, ReceiptStatus, Status
from storage import Store
from tests.integration.harness import Pipeline, read_all
from workers.settings import Settings


async def test_events_published_through_the_client_become_a_read_dto(
    settings: Settings, store: Store
) -> None:
    """A user, a conversation, a message and a READ receipt, all via the client,
    end in a READ DTO keyed by the conversation, with sender and title."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all"
    )
    async with Pipeline(settings):
        await producer.start()
        try:
            courier = CourierClient(producer, topics=settings.topics)
            await courier.upsert_user("u-1", "Ada Lovelace")
            await courier.upsert_user("u-2", "Charles Babbage")
            await courier.upsert_conversation(
                "c-1", "#engines", "group", ["u-1", "u-2"]
            )
            sent = await courier.publish_message(
                "m-1", "u-1", "c-1", "the engine weaves algebra"
            )
            await courier.publish_receipt("m-1", "c-1", "u-2", ReceiptStatus.READ)
        finally:
            await producer.stop()
        records = await read_all(
            settings,
            settings.topics.client_messages,
            lambda got: any(b'"READ"' in (r.value or b"") for r in got),
            timeout=60,
        )

    last = records[-1]
    dto = MessageDTO.model_validate_json(last.value)
    assert b"c-1" == last.key
    assert ("m-1", Status.READ) == (dto.id, dto.status)
    assert ("Ada Lovelace", "#engines") == (
        dto.sender.display_name,
        dto.conversation.title,
    )
    assert (sent.content, sent.timestamp) == (dto.content, dto.timestamp)
