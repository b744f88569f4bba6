"""Integration tests need the real Kafka broker and the real MongoDB-wire store.

``make test`` starts both (``deploy/local``). Where they are not reachable and
a Docker engine answers, testcontainers starts them instead. Where neither can
be had, every integration test fails with one clear message: never a skip.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

import pytest

from storage import Store
from tests.integration.harness import fresh_settings, store_for
from workers.settings import Settings


def _reachable() -> str | None:
    from deploy.local import services

    try:
        services.mongo_probe(services.mongodb_uri(), timeout=3)
    except Exception as error:
        return f"the store at {services.mongodb_uri()} does not answer ({error})"
    try:
        asyncio.run(services._kafka_probe_within(services.kafka_bootstrap(), 10))
    except Exception as error:
        return f"Kafka at {services.kafka_bootstrap()} does not answer ({error})"
    return None


def _docker_engine() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session", autouse=True)
def services() -> Iterator[None]:
    """Make sure real services answer before any integration test runs."""
    problem = _reachable()
    if problem is None:
        yield
        return
    if not _docker_engine():
        pytest.fail(
            f"Integration tests need real services: {problem}. Run `make test` "
            "(it starts them), `make up`, or point COURIER_KAFKA_BOOTSTRAP_SERVERS "
            "and COURIER_MONGODB_URI at running ones.",
            pytrace=False,
        )
    from testcontainers.kafka import KafkaContainer
    from testcontainers.mongodb import MongoDbContainer

    with KafkaContainer() as kafka, MongoDbContainer("mongo:7") as mongo:
        os.environ["COURIER_KAFKA_BOOTSTRAP_SERVERS"] = kafka.get_bootstrap_server()
        os.environ["COURIER_MONGODB_URI"] = mongo.get_connection_url()
        yield


@pytest.fixture
def settings() -> Settings:
    """Settings with a fresh topic prefix and a fresh database."""
    return fresh_settings()


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    s = store_for(settings)
    await s.detect()
    yield s
    await s.client.drop_database(settings.mongodb_database)
    await s.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)
