"""The AsyncAPI document: generated from the code, committed, valid, served."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.net import free_port, get
from workers.docs import docs_app

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "asyncapi.yaml"
VALIDATOR = ROOT / "docs" / "tools" / "validate.cjs"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not (ROOT / ".local" / "node" / "node_modules").is_dir():
        pytest.fail(
            "The AsyncAPI parser needs Node.js and `make node-tools`.", pytrace=False
        )
    return subprocess.run(
        [node, str(VALIDATOR), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_committed_document_is_what_the_code_generates(tmp_path: Path) -> None:
    """``make docs`` output, made afresh, equals docs/asyncapi.yaml."""
    fresh = tmp_path / "asyncapi.yaml"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "faststream"),
            "docs",
            "gen",
            "--factory",
            "workers.docs:docs_app",
            "--yaml",
            "--out",
            str(fresh),
        ],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=120,
    )

    assert fresh.read_text(encoding="utf-8") == COMMITTED.read_text(encoding="utf-8"), (
        "docs/asyncapi.yaml is out of date with the code: run make docs"
    )


def test_the_asyncapi_parser_accepts_the_committed_document() -> None:
    result = validate(COMMITTED)

    assert 0 == result.returncode, result.stdout + result.stderr
    assert "valid AsyncAPI 3.0.0" in result.stdout


def test_the_asyncapi_parser_rejects_a_dangling_reference(tmp_path: Path) -> None:
    """The check can fail: a payload that points nowhere is an error."""
    broken = tmp_path / "asyncapi.yaml"
    broken.write_text(
        COMMITTED.read_text(encoding="utf-8").replace(
            "#/components/schemas/UserUpserted", "#/components/schemas/Nothing"
        ),
        encoding="utf-8",
    )

    result = validate(broken)

    assert 1 == result.returncode
    assert "invalid-ref" in result.stdout


def test_each_topic_documents_its_wire_model_and_direction() -> None:
    """Consumed topics are receive operations, published ones send operations."""
    doc: dict[str, Any] = docs_app().schema.to_specification().to_jsonable()
    messages = doc["components"]["messages"]
    seen = set()
    for operation in doc["operations"].values():
        channel = doc["channels"][operation["channel"]["$ref"].split("/")[-1]]
        (ref,) = channel["messages"].values()
        message = messages[ref["$ref"].split("/")[-1]]
        model = message["payload"]["$ref"].split("/")[-1]
        seen.add((operation["action"], channel["address"], model))

    assert {
        ("receive", "chat.users.v1", "UserUpserted"),
        ("receive", "chat.conversations.v1", "ConversationUpserted"),
        ("receive", "chat.messages.v1", "MessageSubmitted"),
        ("receive", "chat.receipts.v1", "ReceiptReported"),
        ("receive", "chat.internal.message-changes.v1", "MessageChanged"),
        ("send", "chat.internal.message-changes.v1", "MessageChanged"),
        ("send", "chat.internal.directory-changes.v1", "DirectoryChanged"),
        ("send", "chat.client.messages.v1", "MessageDTO"),
        ("send", "chat.dlq.v1", "courier:dead-letters:Message:Payload"),
    } == seen
    assert "EmptyPayload" not in doc["components"]["schemas"]


def test_courier_docs_serve_serves_the_document_until_interrupted(
    tmp_path: Path,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (tmp_path / "serve.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "docs", "serve", "--port", str(port)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        yaml_page = get(f"{base}/asyncapi.yaml")
        while yaml_page[0] == 0 and server.poll() is None:
            assert time.monotonic() < deadline, "courier docs serve never answered"
            time.sleep(0.2)
            yaml_page = get(f"{base}/asyncapi.yaml")
        html_page = get(f"{base}/")
        json_page = get(f"{base}/asyncapi.json")
        missing = get(f"{base}/nothing")
    finally:
        server.send_signal(signal.SIGINT)
        code = server.wait(10)

    assert (200, COMMITTED.read_text(encoding="utf-8")) == yaml_page
    assert 200 == html_page[0]
    assert "<title>Courier AsyncAPI</title>" in html_page[1]
    assert '"asyncapi":"3.0.0"' in json_page[1].replace(" ", "")
    assert 404 == missing[0]
    assert 0 == code, (tmp_path / "serve.log").read_text()
