"""Metrics and health over HTTP: ``/metrics``, ``/healthz`` and ``/readyz``.

Served by prometheus_client's WSGI app on the standard library's WSGI server,
in a daemon thread, so a slow scrape never stalls a batch. One registry,
:data:`REGISTRY`, holds Courier's own metrics and those of FastStream's
Prometheus middleware (``faststream_*``), which the composition root adds to
the broker. ``/healthz``
answers 200 while the process's event loop keeps turning; ``/readyz``
answers 200 only while the last check of the broker and of the store, made
from the event loop every few seconds, succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import prometheus_client
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from workers.kafka import LagReader

log = structlog.get_logger("courier.observe")

REGISTRY: CollectorRegistry = prometheus_client.REGISTRY
"""What ``/metrics`` serves: prometheus_client's default registry."""

LAG_TIMEOUT_MS = 10_000
"""How long one lag request may take before the reading counts as failed."""

RECORDS = Counter(
    "courier_records_total",
    "Records a worker finished with, by outcome.",
    ["worker", "topic", "outcome"],
)
BATCH_SECONDS = Histogram(
    "courier_batch_seconds",
    "Time to make one batch durable, commit included.",
    ["worker"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_RECORDS = Histogram(
    "courier_batch_records",
    "Records per batch.",
    ["worker"],
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000),
)
RETRIES = Counter(
    "courier_batch_retries_total", "Batch retries after a transient fault.", ["worker"]
)
STATUS_CHANGES = Counter(
    "courier_status_changes_total",
    "Messages that reached a status, counted when the write lands.",
    ["status"],
)
DTOS = Counter("courier_dtos_published_total", "DTOs acknowledged by the broker.")
PARKED = Counter("courier_parked_total", "Records parked to wait for a missing entity.")
READY = Gauge("courier_ready", "1 while the broker and the store answer.")
CACHE_LOOKUPS = Counter(
    "courier_directory_cache_lookups_total",
    "Directory entries asked of the cache, by kind and outcome (hit, miss).",
    ["kind", "outcome"],
)
CACHE_DROPS = Counter(
    "courier_directory_cache_drops_total",
    "Whole-cache drops because the change announcements could not be confirmed.",
)
CONSUMER_LAG = Gauge(
    "courier_consumer_lag",
    "Records past the consumer group's committed offset, per partition; "
    "read from the broker every COURIER_LAG_REFRESH_S.",
    ["group", "topic", "partition"],
)
LAG_ERRORS = Counter(
    "courier_consumer_lag_errors_total",
    "Lag readings of one topic that failed; the gauge keeps its last value.",
)

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


class Health:
    """What the HTTP thread reports, kept current by the event loop."""

    def __init__(self, stale_after_s: float = 30.0) -> None:
        self.stale_after_s = stale_after_s
        self.beat = time.monotonic()
        self.ready = False
        self.reason = "starting"

    def alive(self) -> bool:
        return time.monotonic() - self.beat < self.stale_after_s

    async def watch(self, probe: Callable[[], Any], every_s: float = 5.0) -> None:
        """Beat and probe forever; ``probe`` raises when something is down."""
        while True:
            self.beat = time.monotonic()
            try:
                await asyncio.wait_for(probe(), timeout=every_s)
            except Exception as error:
                self.ready, self.reason = False, f"{type(error).__name__}: {error}"
            else:
                self.ready, self.reason = True, "ok"
            READY.set(1 if self.ready else 0)
            await asyncio.sleep(every_s)


async def refresh_lag(
    reader: LagReader,
    targets: Sequence[tuple[str, str]],
    stopping: asyncio.Event | None = None,
) -> None:
    """Set the lag gauge of every ``(group, topic)``; log what could not be read.

    Stops between targets once ``stopping`` is set. Each reading is bounded by
    the clients' own request timeout, never by cancelling it.
    """
    failed: list[str] = []
    error: Exception | None = None
    for group, topic in targets:
        if stopping is not None and stopping.is_set():
            break
        try:
            rows = await reader.lag(group, topic)
        except Exception as caught:
            LAG_ERRORS.inc()
            failed.append(topic)
            error = caught
            continue
        for row in rows:
            CONSUMER_LAG.labels(group, topic, str(row.partition)).set(row.lag)
    if failed:
        log.warning(
            "lag.refresh_failed",
            topics=failed,
            error=f"{type(error).__name__}: {error}",
        )


async def watch_lag(
    bootstrap: str,
    targets: Sequence[tuple[str, str]],
    every_s: float,
    stopping: asyncio.Event,
) -> None:
    """Refresh the lag gauge now and then every ``every_s`` seconds.

    One admin client and one consumer serve every reading. Returns soon
    after ``stopping`` is set; it is not cancelled, because a Kafka client
    cancelled while it connects leaves a socket open.
    """
    reader = LagReader(bootstrap, LAG_TIMEOUT_MS)
    try:
        while not stopping.is_set():
            await refresh_lag(reader, targets, stopping)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), every_s)
    finally:
        await reader.close()


def _app(health: Health) -> Callable[[Environ, StartResponse], Iterable[bytes]]:
    metrics = prometheus_client.make_wsgi_app(REGISTRY)

    def app(environ: Environ, start: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start)  # type: ignore[no-any-return]
        if path == "/healthz":
            ok, text = (
                health.alive(),
                "alive" if health.alive() else "event loop stalled",
            )
        elif path == "/readyz":
            ok, text = health.ready, health.reason
        else:
            start("404 Not Found", [("Content-Type", "text/plain")])
            return [b"try /metrics, /healthz or /readyz\n"]
        status = "200 OK" if ok else "503 Service Unavailable"
        start(status, [("Content-Type", "text/plain; charset=utf-8")])
        return [f"{text}\n".encode()]

    return app


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def serve(host: str, port: int, health: Health) -> WSGIServer:
    """Start the HTTP endpoints in a daemon thread; return the server."""
    server = make_server(host, port, _app(health), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    return server


def stop(server: WSGIServer | None) -> None:
    if server is not None:
        with contextlib.suppress(Exception):
            server.shutdown()
            server.server_close()
