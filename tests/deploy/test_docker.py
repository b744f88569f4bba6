"""The worker image and the compose file: hadolint, the Compose
Specification's schema, and agreement with the workers' settings.

Nothing here builds the image or starts a container: there is no Docker
engine to do it with.
"""

from __future__ import annotations

import copy
import re
import shlex
import subprocess
from typing import Any

import jsonschema
import yaml

from tests.deploy.tooling import (
    COMPOSE_FILE,
    DOCKERFILE,
    DOCKERIGNORE,
    HADOLINT,
    ROOT,
    WORKERS,
    compose_schema,
    require,
    settings_from,
)


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    rows = [line.split(None, 1) for line in lines if line and not line.startswith("#")]

    return [(row[0].upper(), row[1] if len(row) > 1 else "") for row in rows]


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())

    return compose


def _compose_errors(compose: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(compose_schema())

    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(compose)]


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"write durations as whole seconds ('40s'), not {duration!r}"

    return float(match.group(1))


def test_hadolint_finds_nothing_at_warning_level_or_above() -> None:
    hadolint = require(HADOLINT, "make install")
    done = subprocess.run(
        [
            str(hadolint),
            "--no-color",
            "--failure-threshold",
            "warning",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )

    assert 0 == done.returncode, done.stdout + done.stderr


def test_the_image_runs_courier_unprivileged_and_stops_on_sigterm() -> None:
    instructions = _instructions()
    final = instructions[
        max(i for i, (op, _) in enumerate(instructions) if op == "FROM") :
    ]
    values = dict(final)

    assert ["courier", "run"] == yaml.safe_load(values["ENTRYPOINT"])
    assert "SIGTERM" == values["STOPSIGNAL"]
    assert values["USER"].split(":")[0] not in {"0", "root"}
    assert "/healthz" in values["HEALTHCHECK"]
    assert "COURIER_HTTP_HOST=0.0.0.0" in values["ENV"].split()


def test_the_build_context_lets_in_everything_the_dockerfile_copies() -> None:
    """.dockerignore is an allow-list: a COPY it does not allow would fail."""
    allowed = [
        line[1:].rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.startswith("!")
    ]
    sources = [
        source
        for op, args in _instructions()
        if op == "COPY" and "--from=" not in args
        for source in shlex.split(args)[:-1]
    ]

    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert any(
            source.rstrip("/") == a or source.startswith(a + "/") for a in allowed
        ), f"{source} is copied but .dockerignore does not let it in"


def test_the_compose_file_fits_the_compose_specification() -> None:
    assert [] == _compose_errors(_compose())


def test_the_compose_schema_rejects_a_misspelt_field() -> None:
    """Guards the check above against passing everything."""
    broken = copy.deepcopy(_compose())
    broken["services"]["status"]["helthcheck"] = broken["services"]["status"].pop(
        "healthcheck"
    )

    assert [] != _compose_errors(broken)


def test_workers_start_after_their_services_and_the_topics() -> None:
    services = _compose()["services"]
    topics = services["topics"]

    assert ["courier"] == topics["entrypoint"]
    assert ["topics", "create"] == topics["command"]
    assert {"kafka": {"condition": "service_healthy"}} == topics["depends_on"]
    for service in ("kafka", "mongodb", *WORKERS):
        assert "healthcheck" in services[service], service
    for worker in WORKERS:
        service = services[worker]
        assert [worker] == service["command"]
        assert {
            "kafka": {"condition": "service_healthy"},
            "mongodb": {"condition": "service_healthy"},
            "topics": {"condition": "service_completed_successfully"},
        } == service["depends_on"]


def test_compose_workers_outlive_the_shutdown_grace_and_probe_their_port() -> None:
    for worker in WORKERS:
        service = _compose()["services"][worker]
        settings = settings_from(service["environment"])
        probe = " ".join(service["healthcheck"]["test"])

        assert _seconds(service["stop_grace_period"]) >= settings.shutdown_grace_s + 10
        assert f"127.0.0.1:{settings.http_port}/readyz" in probe
        assert "kafka:9092" == settings.kafka_bootstrap_servers
