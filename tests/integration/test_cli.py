"""The ``courier`` commands, run as a person runs them, against real services."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from storage import Store
from tests.integration.harness import DATA, Out, Pipeline, env_of, publish, read_all
from tests.integration.test_guarantees import directory, message
from workers.settings import Settings


def courier(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        env=env_of(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_topics_create_is_idempotent(settings: Settings) -> None:
    """`courier topics create` creates every topic once, then reports them."""
    first = courier(settings, "topics", "create")
    second = courier(settings, "topics", "create")
    assert (0, 0) == (first.returncode, second.returncode)
    assert len(settings.topics.all) == first.stdout.count(" created ")
    assert len(settings.topics.all) == second.stdout.count(" exists ")
    assert settings.topics.directory_changes in first.stdout


def test_replay_of_the_slack_export_then_tail(settings: Settings) -> None:
    """`courier replay` publishes a real Slack export; `courier tail` shows it."""
    done = courier(settings, "replay", str(DATA / "slack" / "testarchive"))
    assert 0 == done.returncode, done.stderr
    assert "147 messages" in done.stdout
    shown = courier(
        settings,
        "tail",
        "messages",
        "--from-beginning",
        "--limit",
        "3",
        "--timeout",
        "10",
    )
    assert 0 == shown.returncode, shown.stderr
    assert 3 == shown.stdout.count('"sender_id"')


async def test_dlq_list_and_replay_restore_the_original_record(
    settings: Settings, store: Store
) -> None:
    """A dead letter goes back to its topic with its key, value and headers."""
    t = settings.topics
    bad = b'{"event_id": "e-bad", "id": "m-bad"}'
    headers = [("trace", b"\xff\x00"), ("empty", None)]
    async with Pipeline(settings):
        await directory(settings, store, ["u-1", "u-2"])
        await publish(settings, [Out(t.messages, "c-1", bad, headers)])
        await read_all(settings, t.dlq, lambda got: len(got) == 1)
    listed = courier(settings, "dlq", "list", "--json")
    assert 0 == listed.returncode, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [t.messages] == [r["topic"] for r in rows]
    assert "sender_id: Field required" in rows[0]["reason"]

    replayed = courier(settings, "dlq", "replay", rows[0]["ref"])
    assert 0 == replayed.returncode, replayed.stderr
    back = await read_all(settings, t.messages, lambda got: len(got) == 2)
    assert (bad, b"c-1") == (back[1].value, back[1].key)
    assert [
        ("trace", b"\xff\x00"),
        ("empty", None),
        ("courier.replayed_from_dlq", rows[0]["ref"].encode()),
    ] == list(back[1].headers)


async def test_lag_reports_every_group_and_partition(
    settings: Settings, store: Store
) -> None:
    """`courier lag` reads the broker's committed offsets: zero once drained."""
    t = settings.topics
    async with Pipeline(settings):
        await directory(settings, store, ["u-1", "u-2"])
        await publish(settings, [Out(t.messages, "c-1", message("m1"))])
        await read_all(settings, t.client_messages, lambda got: len(got) == 1)
    shown = courier(settings, "lag")
    assert 0 == shown.returncode, shown.stderr
    assert "total lag: 0" in shown.stdout
    assert settings.group("status") in shown.stdout


def test_unknown_worker_is_one_clear_sentence(settings: Settings) -> None:
    """`courier run` with a wrong name says what the choices are, and fails."""
    done = courier(settings, "run", "statuss")
    assert 1 == done.returncode
    assert "choose directory, status, enrichment or all" in done.stderr


async def test_a_taken_http_port_is_one_sentence_before_anything_else(
    settings: Settings,
) -> None:
    """`courier run` on a busy port fails at once: no traceback, no topics."""
    from tests.integration.test_topics import ours

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = settings.model_copy(update={"http_port": port})
        single = courier(busy, "run", "all")
        many = courier(busy, "run", "all", "--processes", "2")

    for done in (single, many):
        assert 1 == done.returncode
        assert [
            f"Cannot serve /metrics on 127.0.0.1:{port} (Address already in use); "
            "set COURIER_HTTP_PORT to a free port, or 0 for none."
        ] == done.stderr.splitlines()
    assert [] == await ours(settings)


def test_replay_of_the_raw_ubuntu_log(settings: Settings) -> None:
    """`courier replay` takes the [HH:MM] log whose first line once failed."""
    done = courier(
        settings, "replay", str(DATA / "irc" / "ubuntu-test" / "2016-06-08_07.raw.txt")
    )

    assert 0 == done.returncode, done.stderr
    assert "1,436 messages" in done.stdout
    assert "Traceback" not in done.stderr
