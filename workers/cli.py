"""The ``courier`` command line: run workers, manage local services, inspect topics."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from aiokafka.errors import KafkaConnectionError, KafkaError

from storage import StorageError
from workers.settings import Settings

app = typer.Typer(
    help="Courier: a Kafka-to-MongoDB message pipeline for chat backends.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
topics_app = typer.Typer(help="Manage Courier's Kafka topics.", no_args_is_help=True)
dlq_app = typer.Typer(help="Inspect and replay dead letters.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(dlq_app, name="dlq")

T = TypeVar("T")
WORKER_NAMES = ("directory", "status", "enrichment")
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_IRC = REPO_ROOT.parent / "shared" / "data" / "irc" / "new-domains"


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def settings() -> Settings:
    return Settings()


def run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine, turning connection failures into one clear sentence."""
    s = settings()
    try:
        return asyncio.run(factory())
    except KafkaConnectionError as error:
        raise fail(
            f"Cannot reach Kafka at {s.kafka_bootstrap_servers} ({error}). "
            "Start it with `make up`, or set COURIER_KAFKA_BOOTSTRAP_SERVERS."
        ) from None
    except StorageError as error:
        raise fail(
            f"{error} Start the store with `make up`, or set COURIER_MONGODB_URI."
        ) from None
    except KafkaError as error:
        raise fail(f"Kafka refused the request: {error}.") from None


@app.command()
def run(
    worker: Annotated[
        str, typer.Argument(help="directory, status, enrichment, or all.")
    ] = "all",
    processes: Annotated[
        int, typer.Option(min=1, help="Worker processes; HTTP ports count up.")
    ] = 1,
) -> None:
    """Run one worker, or all three, until SIGTERM or Ctrl-C."""
    names = list(WORKER_NAMES) if worker == "all" else [worker]
    if not set(names) <= set(WORKER_NAMES):
        raise fail(
            f"Unknown worker {worker!r}: choose directory, status, enrichment or all."
        )
    if processes > 1:
        raise typer.Exit(_run_many(worker, processes))

    from workers.app import build_app
    from workers.log import configure

    s = settings()
    configure(s.log_level, s.log_format)
    faststream_app, _ = build_app(s, names)
    try:
        asyncio.run(faststream_app.run())
    except KafkaConnectionError as error:
        raise fail(
            f"Cannot reach Kafka at {s.kafka_bootstrap_servers} ({error}). "
            "Start it with `make up`, or set COURIER_KAFKA_BOOTSTRAP_SERVERS."
        ) from None
    except StorageError as error:
        raise fail(f"{error} Start the store with `make up`.") from None


def _run_many(worker: str, processes: int) -> int:
    base = settings().http_port
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "run", worker],
            env={**os.environ, "COURIER_HTTP_PORT": str(base + i)},
        )
        for i in range(processes)
    ]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    return max(child.wait() for child in children)


@app.command()
def up(
    service: Annotated[
        list[str] | None, typer.Argument(help="kafka and/or ferretdb; default both.")
    ] = None,
) -> None:
    """Start the local Kafka broker and FerretDB store (idempotent)."""
    from deploy.local import services

    try:
        services.up(service or list(services.SERVICES))
    except services.ServiceError as error:
        raise fail(str(error)) from None


@app.command()
def down(
    service: Annotated[list[str] | None, typer.Argument()] = None,
) -> None:
    """Stop the local services (idempotent)."""
    from deploy.local import services

    services.down(service or list(services.SERVICES))


@app.command()
def status(
    service: Annotated[list[str] | None, typer.Argument()] = None,
) -> None:
    """Show whether the local services run and answer; exit 3 if not."""
    from deploy.local import services

    raise typer.Exit(services.status(service or list(services.SERVICES)))


@topics_app.command("create")
def topics_create() -> None:
    """Create the inbound, internal, client and dead-letter topics (idempotent)."""
    from workers.kafka import ensure_topics

    s = settings()
    created = run_async(
        lambda: ensure_topics(s.kafka_bootstrap_servers, s.topics, s.partitions)
    )
    for name in s.topics.all:
        mark = "created" if name in created else "exists"
        typer.echo(f"{name:45} {mark} ({s.partitions} partitions)")


@dlq_app.command("list")
def dlq_list(
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object a line.")
    ] = False,
) -> None:
    """List the dead letters: where each came from and why."""
    from workers.dlq import read_dead_letters

    s = settings()
    letters = run_async(
        lambda: read_dead_letters(s.kafka_bootstrap_servers, s.topics.dlq)
    )
    for letter in letters:
        row = {
            "ref": letter.ref,
            "topic": letter.meta("topic"),
            "partition": letter.meta("partition"),
            "offset": letter.meta("offset"),
            "worker": letter.meta("worker"),
            "error": letter.meta("error"),
            "reason": letter.meta("reason"),
            "bytes": len(letter.value or b""),
        }
        if as_json:
            typer.echo(json.dumps(row, ensure_ascii=False))
        else:
            typer.echo(
                f"{row['ref']:>8}  {row['topic']}[{row['partition']}]@{row['offset']}"
                f"  {row['error']}: {row['reason']}"
            )
    if not as_json:
        typer.echo(f"{len(letters)} dead letters in {s.topics.dlq}")


@dlq_app.command("replay")
def dlq_replay(
    refs: Annotated[
        list[str] | None,
        typer.Argument(
            help="PARTITION:OFFSET of each dead letter, as `dlq list` shows."
        ),
    ] = None,
    replay_all: Annotated[
        bool, typer.Option("--all", help="Replay every one.")
    ] = False,
) -> None:
    """Publish chosen dead letters again to their original topic."""
    from workers.dlq import read_dead_letters, replay

    if not refs and not replay_all:
        raise fail("Name dead letters as PARTITION:OFFSET, or pass --all.")
    s = settings()
    letters = run_async(
        lambda: read_dead_letters(s.kafka_bootstrap_servers, s.topics.dlq)
    )
    chosen = letters if replay_all else [x for x in letters if x.ref in set(refs or [])]
    unknown = set(refs or []) - {x.ref for x in letters}
    if unknown:
        raise fail(
            f"No dead letter at {', '.join(sorted(unknown))}; see `courier dlq list`."
        )
    count = run_async(lambda: replay(s.kafka_bootstrap_servers, chosen))
    typer.echo(f"replayed {count} dead letters to their original topics")


@app.command()
def demo(
    logs: Annotated[
        Path, typer.Option(help="Folder of IRC logs (*.ascii.txt) to replay.")
    ] = DEFAULT_IRC,
) -> None:
    """Replay the real IRC logs through the whole pipeline and report."""
    from workers.demo import run_demo
    from workers.log import configure

    configure("WARNING", settings().log_format)
    # A topic created a moment ago answers its first produce with a retried
    # NotLeaderForPartition warning; the retry is aiokafka's job, not news.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    files = sorted(logs.glob("*.ascii.txt"))
    if not files:
        raise fail(f"No *.ascii.txt IRC logs in {logs}; pass --logs FOLDER.")
    log_path = REPO_ROOT / ".local" / "log" / "demo-workers.log"
    report = run_async(lambda: run_demo(settings(), files, log_path, typer.echo))

    typer.echo("")
    typer.secho("Courier demo report", bold=True)
    typer.echo("  events published:")
    for topic, count in sorted(report.published.items()):
        typer.echo(f"    {topic:50} {count:>7,}")
    typer.echo("  messages persisted, by status:")
    for name, count in sorted(report.statuses.items()):
        typer.echo(f"    {name:50} {count:>7,}")
    typer.echo(f"  messages persisted in all:   {sum(report.statuses.values()):>7,}")
    typer.echo(f"  DTO records on the topic:    {report.dtos:>7,}")
    typer.echo(f"  distinct DTOs (id, version): {report.distinct_dtos:>7,}")
    typer.echo(f"  messages with a DTO:         {report.dto_messages:>7,}")
    typer.echo(f"  dead letters:                {report.dead_letters:>7,}")
    typer.echo(f"  parked, still waiting:       {report.parked:>7,}")
    typer.echo(f"  elapsed:                     {report.elapsed_s:>7.1f} s")
    typer.echo(
        "  repeats of a DTO are at-least-once delivery: same id and version, "
        "dropped by version"
    )
    typer.echo(
        "  receipts are derived from the logs' activity (marked derived: true);"
        " a message\n  reaches DELIVERED or READ only when every participant"
        " of its channel has it"
    )
    typer.echo(f"  worker log: {log_path.relative_to(REPO_ROOT)}")
    typer.echo("  sample DTO:")
    typer.echo(json.dumps(report.sample, indent=2, ensure_ascii=False))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
