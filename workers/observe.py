"""Metrics and health over HTTP: ``/metrics``, ``/healthz`` and ``/readyz``.

Served by prometheus_client's WSGI app on the standard library's WSGI server,
in a daemon thread, so a slow scrape never stalls a batch. ``/healthz``
answers 200 while the process's event loop keeps turning; ``/readyz``
answers 200 only while the last check of the broker and of the store, made
from the event loop every few seconds, succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, make_wsgi_app

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


def _app(health: Health) -> Callable[[Environ, StartResponse], Iterable[bytes]]:
    metrics = make_wsgi_app(REGISTRY)

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
