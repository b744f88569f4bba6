"""Courier's topics: who creates them, what they report, what the DLQ takes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from storage import Store
from tests.integration.harness import (
    Out,
    Pipeline,
    committed_lag,
    eventually,
    publish,
    read_all,
)
from tests.integration.test_cli import courier
from tests.integration.test_guarantees import directory
from workers.kafka import DLQ_MAX_MESSAGE_BYTES
from workers.runtime import VALUE_DROPPED
from workers.settings import Settings


@asynccontextmanager
async def admin_of(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def ours(settings: Settings) -> list[str]:
    """The topics of this test's prefix that the broker has."""
    async with admin_of(settings) as admin:
        names = await admin.list_topics()

    return sorted(n for n in names if n.startswith(settings.topic_prefix))


async def topic_config(settings: Settings, topic: str) -> dict[str, str]:
    async with admin_of(settings) as admin:
        (described,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]
        )
    (resource,) = described.to_object()["resources"]

    return {e["config_names"]: e["config_value"] for e in resource["config_entries"]}


async def set_topic_config(settings: Settings, topic: str, **values: str) -> None:
    configs = {k.replace("_", "."): v for k, v in values.items()}
    async with admin_of(settings) as admin:
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs)]
        )


async def test_read_only_commands_create_no_topic(settings: Settings) -> None:
    """lag, dlq list and tail on a fresh prefix fail in one sentence, create none."""
    runs = {
        "lag": courier(settings, "lag"),
        "dlq list": courier(settings, "dlq", "list"),
        "tail": courier(settings, "tail", "dlq", "--timeout", "1"),
    }
    shown = courier(settings, "status")

    assert [] == await ours(settings)
    for name, done in runs.items():
        assert 1 == done.returncode, name
        assert "`courier topics create`" in done.stderr, (name, done.stderr)
        assert 1 == len(done.stderr.strip().splitlines()), (name, done.stderr)
    assert 0 == shown.returncode, shown.stdout + shown.stderr


async def test_topics_create_reports_the_real_partition_count(
    settings: Settings,
) -> None:
    """A topic that already exists is shown with its own count, flagged if off."""
    t = settings.topics
    async with admin_of(settings) as admin:
        await admin.create_topics([NewTopic(t.users, 1, 1)])

    done = courier(settings, "topics", "create")

    assert 0 == done.returncode, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert "exists (1 partitions)" in lines[t.users]
    assert "differs from COURIER_PARTITIONS=2" in lines[t.users]
    assert "created (2 partitions)" in lines[t.messages]
    assert "differs" not in lines[t.messages]


async def test_an_existing_dlq_is_raised_to_courier_s_size_limit(
    settings: Settings,
) -> None:
    """A DLQ made with the broker's default limit gets Courier's; others stay."""
    t = settings.topics
    async with admin_of(settings) as admin:
        await admin.create_topics(
            [NewTopic(t.dlq, 2, 1, topic_configs={"retention.ms": "86400000"})]
        )

    async def described() -> bool:
        return "max.message.bytes" in await topic_config(settings, t.dlq)

    await eventually(described, 10, "the new topic's config is readable")
    assert int((await topic_config(settings, t.dlq))["max.message.bytes"]) < (
        DLQ_MAX_MESSAGE_BYTES
    )

    done = courier(settings, "topics", "create")

    assert 0 == done.returncode, done.stderr
    config = await topic_config(settings, t.dlq)
    assert str(DLQ_MAX_MESSAGE_BYTES) == config["max.message.bytes"]
    assert "86400000" == config["retention.ms"]
    assert "topics.dlq_limit_raised" in done.stderr


async def test_a_dead_letter_too_large_for_the_dlq_goes_without_its_value(
    settings: Settings, store: Store
) -> None:
    """The broker refusing a dead letter's size leaves a stand-in, not a jam."""
    t = settings.topics
    big = b'{"event_id": "e-big", "pad": "' + b"x" * 20_000 + b'"}'
    small = b'{"event_id": "e-small", "id": "m-small"}'
    async with Pipeline(settings):
        await directory(settings, store, ["u-1", "u-2"])
        await set_topic_config(settings, t.dlq, max_message_bytes="4096")
        await publish(
            settings,
            [
                Out(t.messages, "c-1", big, [("trace", b"t-1")]),
                Out(t.messages, "c-1", small),
            ],
        )
        letters = await read_all(settings, t.dlq, lambda got: len(got) >= 2)

        async def drained() -> bool:
            return (
                await committed_lag(settings, settings.group("status"), t.messages) == 0
            )

        await eventually(drained, 30, "the messages partition moved on")

    by_event = {dict(r.headers).get("courier.dlq.offset"): r for r in letters}
    stand_in, kept = by_event[b"0"], by_event[b"1"]
    headers = dict(stand_in.headers)
    assert b"" == stand_in.value
    assert str(len(big)).encode() == headers[VALUE_DROPPED]
    assert (b"t-1", t.messages.encode(), b"0") == (
        headers["trace"],
        headers["courier.dlq.topic"],
        headers["courier.dlq.offset"],
    )
    assert small == kept.value
    assert VALUE_DROPPED not in dict(kept.headers)
