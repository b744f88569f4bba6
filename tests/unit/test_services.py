"""Unit tests of deploy.local.services: what the local broker is told."""

from __future__ import annotations

from deploy.local.services import Address, _kafka_properties


def test_the_local_broker_never_creates_topics_on_first_use() -> None:
    """As production clusters should: a read or a typo makes no topic."""
    lines = _kafka_properties(Address("127.0.0.1", 19092)).splitlines()

    assert "auto.create.topics.enable=false" in lines
    assert "auto.create.topics.enable=true" not in lines
