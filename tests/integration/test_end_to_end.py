"""The whole pipeline on a slice of the real IRC logs."""

from __future__ import annotations

import json
from pathlib import Path

from contracts import MessageDTO, MessageSubmitted
from storage import Store
from tests.integration.harness import DATA, Out, Pipeline, eventually, publish, read_all
from workers.replay import irc_plan
from workers.settings import Settings

LOGS = DATA / "irc" / "new-domains"


def _slice(tmp_path: Path, name: str, start: int, count: int) -> Path:
    source = LOGS / name
    assert source.exists(), f"the real chat logs are missing: {source}"
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    target = tmp_path / name
    target.write_text("".join(lines[start : start + count]), encoding="utf-8")

    return target


async def test_real_log_slice_is_stored_once_and_enriched_with_current_names(
    tmp_path: Path, settings: Settings, store: Store
) -> None:
    """Every message of a real slice is stored once and gets its DTO."""
    # ubuntu-meeting lines 0-149 hold nick changes; rust adds /me and bot notices.
    files = [
        _slice(tmp_path, "ubuntu-meeting.0.ascii.txt", 0, 150),
        _slice(tmp_path, "rust.0.ascii.txt", 180, 120),
    ]
    plan = irc_plan(files, settings.topics)
    assert plan.user_updates > 0

    async with Pipeline(settings):
        await publish(settings, [Out(p.topic, p.key, p.event) for p in plan.directory])

        async def directory_stored() -> bool:
            users = await store.collection("users").count_documents({})
            return users == plan.users

        await eventually(directory_stored, 30, "the directory is stored")
        await publish(settings, [Out(p.topic, p.key, p.event) for p in plan.traffic])
        dtos = await read_all(
            settings,
            settings.topics.client_messages,
            lambda got: (
                {json.loads(r.value)["id"] for r in got} >= set(plan.message_ids)
            ),
            timeout=90,
        )

    docs = await store.collection("messages").find({}).to_list(None)
    assert sorted(plan.message_ids) == sorted(d["_id"] for d in docs)
    submitted = {
        p.event.id: p.event
        for p in plan.traffic
        if isinstance(p.event, MessageSubmitted)
    }
    for doc in docs:
        event = submitted[doc["_id"]]
        assert (event.sender_id, event.content, event.type.value) == (
            doc["sender_id"],
            doc["content"],
            doc["type"],
        )
        assert event.timestamp == doc["timestamp"]
        assert doc["timestamp"].utcoffset() is not None

    parsed = [MessageDTO.model_validate_json(r.value) for r in dtos]
    assert len(plan.message_ids) == len({d.id for d in parsed})
    for dto in parsed:
        assert submitted[dto.id].content == dto.content
        assert dto.version == dto.status.height
    # Per conversation the DTOs of one message come in rising version order.
    for message_id in {d.id for d in parsed}:
        versions = [d.version for d in parsed if d.id == message_id]
        assert sorted(versions) == versions
