"""A worker process serves /metrics, /healthz and /readyz."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from pathlib import Path

from storage import Store
from tests.integration.harness import Out, WorkerProcess, eventually, publish
from tests.integration.test_guarantees import directory, message
from workers.kafka import ensure_topics
from workers.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return 0, str(error)


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
