"""The benchmark's own code paths at a tiny size: correctness only, no timing."""

from __future__ import annotations

import uuid

from bench.main import drop_all
from bench.run import (
    Variant,
    check_dtos,
    check_store,
    conversation_order,
    drain,
    store_ceiling,
    variant,
)
from bench.workload import load_corpus, make_directory, make_traffic
from workers.settings import Settings


async def test_both_variants_drain_a_small_workload_correctly() -> None:
    """Naive and batched workers store and publish every event of the bench."""
    corpus = load_corpus()
    directory = make_directory(corpus, 30, 30)
    events = make_traffic(corpus, directory, 150, seed=1, tag="")
    base = Settings()
    run = uuid.uuid4().hex[:8]
    variants: list[Variant] = []
    try:
        ceiling = variant(base, run, "ceiling")
        variants.append(ceiling)
        measured = await store_ceiling(ceiling.settings, directory, events)
        assert len(events) == measured["events"]
        for name in ("naive", "batched"):
            v = variant(base, run, name)
            variants.append(v)
            await drain(v, directory, events, within_s=60)
            assert v.workers is not None
            v.workers.stop()
            await check_store(v)
            check_dtos(v, conversation_order(events))
            assert [] == v.problems
    finally:
        await drop_all(base, variants)
