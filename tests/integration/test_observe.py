"""A worker process serves /metrics, /healthz and /readyz."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from deploy.local import services
from storage import Store
from tests.integration.harness import Out, WorkerProcess, eventually, publish
from tests.integration.test_crashes import stop_store
from tests.integration.test_guarantees import directory, directory_direct, message
from tests.net import free_port, get
from workers.kafka import ensure_topics
from workers.settings import Settings


def sample(page: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name{labels}`` on a /metrics page, if there."""
    for family in text_string_to_metric_families(page):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


async def test_metrics_and_health_endpoints_answer(
    tmp_path: Path, settings: Settings, store: Store
) -> None:
    """Ready once broker and store answer; metrics count handled records."""
    port = free_port()
    settings = settings.model_copy(update={"http_port": port})
    base = f"http://127.0.0.1:{port}"
    await ensure_topics(settings.kafka_bootstrap_servers, settings.topics, 2)
    worker = WorkerProcess(settings, tmp_path / "workers.log")
    worker.start()
    try:

        async def ready() -> bool:
            return (await asyncio.to_thread(get, f"{base}/readyz"))[0] == 200

        await eventually(ready, 60, "/readyz answers 200")
        await directory(settings, store, ["u-1", "u-2"])
        await publish(settings, [Out(settings.topics.messages, "c-1", message("m1"))])

        async def counted() -> bool:
            _, text = await asyncio.to_thread(get, f"{base}/metrics")
            return 'outcome="handled",topic="' + settings.topics.messages in text

        await eventually(counted, 60, "the handled message is counted")
        health = await asyncio.to_thread(get, f"{base}/healthz")
        missing = await asyncio.to_thread(get, f"{base}/nothing")
        _, metrics = await asyncio.to_thread(get, f"{base}/metrics")
    finally:
        assert 0 == worker.stop()
    assert (200, "alive\n") == health
    assert 404 == missing[0]
    assert "courier_ready 1.0" in metrics
    assert 'courier_batch_seconds_count{worker="status"}' in metrics
    assert 'courier_status_changes_total{status="SENT"} 1.0' in metrics
    assert "courier_dtos_published_total 1.0" in metrics


async def test_metrics_show_faststream_cache_and_lag_that_drains(
    tmp_path: Path, settings: Settings, store: Store
) -> None:
    """FastStream's counters, cache misses only on first sight, and a lag gauge
    that rises while the store is down and falls back to 0 once it returns."""
    port = free_port()
    settings = settings.model_copy(
        update={"http_port": port, "partitions": 1, "lag_refresh_s": 1.0}
    )
    t = settings.topics
    group = settings.group("status")
    await ensure_topics(settings.kafka_bootstrap_servers, t, 1)
    await directory_direct(settings, store)
    # Published before the worker starts, so its first batch holds all three
    # messages of one sender in one conversation.
    await publish(
        settings, [Out(t.messages, "c-1", message(f"m{i}")) for i in range(3)]
    )
    worker = WorkerProcess(settings, tmp_path / "workers.log")
    worker.start()

    async def page() -> str:
        status, text = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/metrics")
        return text if status == 200 else ""

    async def lag_is(expected: float) -> bool:
        lag = sample(
            await page(),
            "courier_consumer_lag",
            group=group,
            topic=t.messages,
            partition="0",
        )
        return expected == lag

    try:

        async def published() -> bool:
            return 3.0 == sample(await page(), "courier_dtos_published_total")

        await eventually(published, 60, "three DTOs are published")
        await eventually(lambda: lag_is(0), 30, "the lag gauge reads 0")
        drained = await page()
        await asyncio.to_thread(stop_store)
        try:
            await publish(
                settings, [Out(t.messages, "c-1", message(f"m{i}")) for i in (3, 4)]
            )
            await eventually(lambda: lag_is(2), 30, "the gauge shows 2 behind")
        finally:
            await asyncio.to_thread(services.start, "ferretdb")
        await eventually(lambda: lag_is(0), 60, "the lag returns to 0")

        async def all_stored() -> bool:
            return await store.collection("messages").count_documents({}) == 5

        await eventually(all_stored, 30, "the messages of the outage are stored")
    finally:
        assert 0 == worker.stop()
    lookups = {
        (kind, outcome): sample(
            drained,
            "courier_directory_cache_lookups_total",
            kind=kind,
            outcome=outcome,
        )
        for kind in ("user", "conversation")
        for outcome in ("hit", "miss")
    }
    # The status worker's batch reads the sender and the conversation once;
    # the enrichment worker in the same process finds both in the cache.
    assert {("user", "miss"): 1.0, ("conversation", "miss"): 1.0} == {
        k: v for k, v in lookups.items() if k[1] == "miss"
    }
    assert (lookups["user", "hit"] or 0.0) >= 1.0
    assert (lookups["conversation", "hit"] or 0.0) >= 1.0
    received = {
        topic: sample(
            drained,
            "faststream_received_messages_total",
            app_name="courier",
            broker="kafka",
            handler=topic,
        )
        for topic in (t.messages, t.message_changes)
    }
    assert {t.messages: 3.0, t.message_changes: 3.0} == received
    for name in (
        "faststream_received_processed_messages_total",
        "faststream_received_processed_messages_duration_seconds_count",
        "faststream_received_messages_size_bytes_count",
    ):
        assert name in drained
    assert 0 == sample(drained, "courier_consumer_lag_errors_total")
