"""Tests for contracts.client: checked before sending, keyed by the contract."""

from __future__ import annotations

import inspect
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from contracts import (
    CourierClient,
    MessageSubmitted,
    ReceiptStatus,
    Topics,
    ValidationFailed,
    decode,
)
from contracts.client import Producer


class Recording:
    """A producer that keeps what it was given, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> Any:
        self.sent.append((topic, value, key))


def client(prefix: str = "") -> tuple[CourierClient, Recording]:
    producer = Recording()
    return CourierClient(producer, topics=Topics(prefix)), producer


async def test_each_event_goes_to_its_topic_keyed_as_the_contract_says() -> None:
    """Users by user id; conversations, messages and receipts by conversation."""
    courier, producer = client("p.")

    await courier.upsert_user("u-1", "Ada")
    await courier.upsert_conversation("c-1", "#general", "group", ["u-1", "u-2"])
    await courier.publish_message("m-1", "u-1", "c-1", "hello")
    await courier.publish_receipt("m-1", "c-1", "u-2", ReceiptStatus.READ)

    assert [
        ("p.chat.users.v1", b"u-1"),
        ("p.chat.conversations.v1", b"c-1"),
        ("p.chat.messages.v1", b"c-1"),
        ("p.chat.receipts.v1", b"c-1"),
    ] == [(topic, key) for topic, _, key in producer.sent]


async def test_the_value_is_the_event_a_worker_decodes() -> None:
    """What is sent decodes to the returned event, with schema_version 1."""
    courier, producer = client()

    event = await courier.publish_message(
        "m-1", "u-1", "c-1", "hi", timestamp="2024-05-01T12:00:00.123Z"
    )

    value = producer.sent[0][1]
    assert event == decode(MessageSubmitted, value)
    assert 1 == json.loads(value or b"")["schema_version"]
    assert datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC) == event.timestamp


async def test_event_ids_are_generated_unique_unless_given() -> None:
    courier, _ = client()

    first = await courier.upsert_user("u-1", "Ada")
    second = await courier.upsert_user("u-1", "Ada")
    chosen = await courier.upsert_user("u-1", "Ada", event_id="mine-1")

    assert first.event_id != second.event_id
    assert "mine-1" == chosen.event_id


async def test_timestamps_default_to_now_in_utc() -> None:
    courier, _ = client()
    before = datetime.now(UTC).replace(microsecond=0)

    receipt = await courier.publish_receipt("m-1", "c-1", "u-2", "DELIVERED")

    assert before <= receipt.timestamp <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda c: c.publish_message("m-1", "u-1", "c-1", "x" * 70_000), "content"),
        (lambda c: c.publish_message("m 1", "u-1", "c-1", "hi"), "id"),
        (lambda c: c.publish_receipt("m-1", "c-1", "u-2", "SEEN"), "status"),
        (lambda c: c.upsert_user("u-1", ""), "display_name"),
        (lambda c: c.upsert_conversation("c-1", "t", "club", ["u-1"]), "kind"),
        (
            lambda c: c.publish_message(
                "m-1", "u-1", "c-1", "hi", timestamp="2024-05-01T12:00:00"
            ),
            "timestamp",
        ),
    ],
)
async def test_a_contract_breach_raises_in_the_caller_and_sends_nothing(
    call: Any, named: str
) -> None:
    courier, producer = client()

    with pytest.raises(ValidationFailed, match=f"^.* was not sent: {named}"):
        await call(courier)

    assert [] == producer.sent


def test_aiokafkas_producer_takes_the_arguments_the_client_passes() -> None:
    """The Protocol's parameters are a prefix of aiokafka's send_and_wait."""
    ours = list(inspect.signature(Producer.send_and_wait).parameters)
    theirs = list(inspect.signature(AIOKafkaProducer.send_and_wait).parameters)

    assert ours == theirs[: len(ours)]
