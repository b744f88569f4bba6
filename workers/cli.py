"""The ``courier`` command line: run workers, manage local services, inspect topics."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
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
docs_cli = typer.Typer(help="Courier's AsyncAPI document.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(dlq_app, name="dlq")
app.add_typer(docs_cli, name="docs")

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
    from workers.kafka import TopicsMissing

    s = settings()
    try:
        return asyncio.run(factory())
    except TopicsMissing as error:
        raise fail(str(error)) from None
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
        int, typer.Option(min=1, help="Processes in one group; HTTP ports count up.")
    ] = 1,
) -> None:
    """Run one worker, or all three, until SIGTERM or Ctrl-C."""
    names = list(WORKER_NAMES) if worker == "all" else [worker]
    if not set(names) <= set(WORKER_NAMES):
        raise fail(
            f"Unknown worker {worker!r}: choose directory, status, enrichment or all."
        )
    s = settings()
    base = s.http_port
    ports = [base + i if base else 0 for i in range(processes)]
    # Before anything connects anywhere: a taken port would otherwise show
    # only after the topics were made, as a traceback.
    _check_ports(s.http_host, ports)
    from workers.log import configure

    configure(s.log_level, s.log_format)
    if processes > 1:
        raise typer.Exit(_run_many(worker, ports))

    from workers.app import build_app

    faststream_app, _ = build_app(s, names)
    run_async(faststream_app.run)


def _check_ports(host: str, ports: list[int]) -> None:
    """Fail in one sentence if a worker could not serve HTTP on one of ``ports``."""
    for port in ports:
        if not port:
            continue
        # The same options as the server's own socket (wsgiref's HTTPServer).
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                raise fail(
                    f"Cannot serve /metrics on {host}:{port} "
                    f"({error.strerror or error}); set COURIER_HTTP_PORT to a "
                    "free port, or 0 for none."
                ) from None


def _run_many(worker: str, ports: list[int]) -> int:
    from workers.supervisor import RestartsExhausted, Supervisor

    try:
        return Supervisor(worker, ports).run()
    except RestartsExhausted as error:
        raise fail(str(error)) from None


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
    from workers.log import configure

    s = settings()
    configure(s.log_level, s.log_format)
    states = run_async(
        lambda: ensure_topics(s.kafka_bootstrap_servers, s.topics, s.partitions)
    )
    for state in states:
        mark = "created" if state.created else "exists"
        line = f"{state.name:45} {mark} ({state.partitions} partitions)"
        if state.partitions != s.partitions:
            line += (
                f"  differs from COURIER_PARTITIONS={s.partitions}; see "
                "Adding partitions in the README"
            )
            typer.secho(line, fg=typer.colors.YELLOW)
        else:
            typer.echo(line)


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
            "value_dropped": letter.meta("value_dropped") or None,
        }
        if as_json:
            typer.echo(json.dumps(row, ensure_ascii=False))
        else:
            dropped = (
                f"  (value of {row['value_dropped']} bytes dropped: too large)"
                if row["value_dropped"]
                else ""
            )
            typer.echo(
                f"{row['ref']:>8}  {row['topic']}[{row['partition']}]@{row['offset']}"
                f"  {row['error']}: {row['reason']}{dropped}"
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
    # An empty stand-in would publish an empty record; the original is
    # still on its topic while retention keeps it.
    for letter in [x for x in chosen if x.meta("value_dropped")]:
        typer.echo(
            f"skipped {letter.ref}: its value was too large for the dead-letter "
            f"topic; the original is {letter.meta('topic')}"
            f"[{letter.meta('partition')}]@{letter.meta('offset')}",
            err=True,
        )
    chosen = [x for x in chosen if not x.meta("value_dropped")]
    count = run_async(lambda: replay(s.kafka_bootstrap_servers, chosen))
    typer.echo(f"replayed {count} dead letters to their original topics")


@app.command("replay")
def replay_cmd(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="IRC logs (or a folder of them), or a Slack export folder."
        ),
    ],
) -> None:
    """Publish a real chat export as upstream services would (no workers run)."""
    from workers.demo import publish
    from workers.kafka import ensure_topics
    from workers.log import configure
    from workers.replay import plan_for

    s = settings()
    # Through Courier's handler, which keeps aiokafka's retries of a new
    # topic's first produce out of the way.
    configure(s.log_level, s.log_format)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise fail(f"No such file or folder: {', '.join(missing)}.")
    try:
        plan = plan_for(paths, s.topics)
    except ValueError as error:
        raise fail(str(error)) from None
    counts = ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in plan.counts().items())
    typer.echo(f"Replaying {counts}.")

    async def go() -> int:
        await ensure_topics(s.kafka_bootstrap_servers, s.topics, s.partitions)
        with typer.progressbar(length=len(plan.records), label="publishing") as bar:
            sent = await publish(s, plan.directory, bar.update)
            sent += await publish(s, plan.traffic, bar.update)
        return sum(sent.values())

    total = run_async(go)
    typer.echo(f"published {total:,} events to {s.topics.prefix or ''}chat.*.v1")


def _topic_name(name: str) -> str:
    s = settings()
    if name in s.topics.all:
        return name
    for full in s.topics.all:
        if (
            full.removeprefix(s.topic_prefix).removeprefix("chat.").removesuffix(".v1")
            == name
            or full.removeprefix(s.topic_prefix) == name
        ):
            return full
    choices = ", ".join(t.removeprefix(s.topic_prefix) for t in s.topics.all)
    raise fail(f"Unknown topic {name!r}; choose one of {choices}.")


@app.command()
def tail(
    topic: Annotated[
        str, typer.Argument(help="A Courier topic, e.g. client.messages or dlq.")
    ],
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest.")] = False,
    limit: Annotated[int, typer.Option(min=0, help="Stop after N; 0: never.")] = 0,
    timeout: Annotated[
        float, typer.Option(min=0, help="Stop after S idle seconds; 0: never.")
    ] = 0,
) -> None:
    """Print a topic's records as they arrive, decoded and indented."""
    from aiokafka import AIOKafkaConsumer

    from workers.kafka import require_topics

    s = settings()
    name = _topic_name(topic)

    async def go() -> None:
        # Subscribing asks for the topic's metadata, which makes a broker
        # that creates topics on first use create it with its defaults.
        await require_topics(s.kafka_bootstrap_servers, [name])
        consumer = AIOKafkaConsumer(
            name,
            bootstrap_servers=s.kafka_bootstrap_servers,
            group_id=None,
            auto_offset_reset="earliest" if from_beginning else "latest",
            enable_auto_commit=False,
        )
        await consumer.start()
        shown = 0
        try:
            while not limit or shown < limit:
                wait = int(timeout * 1000) if timeout else 60_000
                batch = await consumer.getmany(timeout_ms=wait, max_records=100)
                if not batch and timeout:
                    return
                for records in batch.values():
                    for r in records:
                        _show(r.partition, r.offset, r.key, r.value, r.headers)
                        shown += 1
                        if limit and shown >= limit:
                            return
        finally:
            await consumer.stop()

    run_async(go)


def _show(
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Any,
) -> None:
    head = (
        f"[{partition}:{offset}] key={key.decode('utf-8', 'replace') if key else '-'}"
    )
    typer.secho(head, fg=typer.colors.CYAN)
    meta = {k: v.decode("utf-8", "replace") for k, v in headers if v is not None}
    if meta:
        typer.echo(json.dumps(meta, indent=2, ensure_ascii=False))
    try:
        typer.echo(json.dumps(json.loads(value or b""), indent=2, ensure_ascii=False))
    except (ValueError, RecursionError):
        # Not JSON, or nested deeper than Python's json can go: show the bytes.
        typer.echo(repr(value))


@app.command()
def lag() -> None:
    """Per worker group, topic and partition: committed offset, end and lag."""
    from workers.app import Process
    from workers.kafka import group_lag, require_topics

    s = settings()

    async def go() -> list[tuple[str, str, int, int, int]]:
        await require_topics(
            s.kafka_bootstrap_servers,
            [t for worker in WORKER_NAMES for t in Process.topics_of(s, worker)],
        )
        rows = []
        for worker in WORKER_NAMES:
            group = s.group(worker)
            for topic in Process.topics_of(s, worker):
                for p in await group_lag(s.kafka_bootstrap_servers, group, topic):
                    rows.append((group, topic, p.partition, p.committed, p.end))
        return rows

    rows = run_async(go)
    head = ("group", "topic", "part", "committed", "end", "lag")
    typer.echo(
        f"{head[0]:28} {head[1]:45} {head[2]:>4} {head[3]:>10} {head[4]:>10} "
        f"{head[5]:>8}"
    )
    for group, topic, part, done, end in rows:
        typer.echo(
            f"{group:28} {topic:45} {part:>4} {done:>10} {end:>10} {end - done:>8}"
        )
    typer.echo(f"total lag: {sum(end - done for *_, done, end in rows)}")


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


@docs_cli.command("serve")
def docs_serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port.")] = 8000,
) -> None:
    """Serve the AsyncAPI document and FastStream's page for it, until Ctrl-C."""
    from workers.docs import docs_server

    try:
        server = docs_server(host, port)
    except OSError as error:
        raise fail(
            f"Cannot listen on {host}:{port} ({error}); pick another --port."
        ) from None
    typer.echo(
        f"AsyncAPI docs on http://{host}:{port}/ "
        f"(the document itself: /asyncapi.yaml, /asyncapi.json); Ctrl-C stops"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
