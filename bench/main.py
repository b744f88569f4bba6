"""The whole benchmark in one run, and its report.

Order: the store ceiling; the batched pipeline (drain, then paced latency
and the search for the highest steady rate, then the lookup comparison on
its filled database); the naive pipeline (drain of a subset, paced latency
until it falls behind); one against two processes. It prints a table,
writes the figures as JSON and a latency chart under ``bench/results/``,
and ends with one JSON line of the headline figures.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from bench.probes import REPO, Lag, Workers
from bench.run import (
    Drain,
    Say,
    Step,
    Variant,
    check_dtos,
    check_store,
    conversation_order,
    drain,
    lookups,
    paced,
    quiet,
    stamp,
    store_ceiling,
    variant,
)
from bench.workload import (
    Corpus,
    Directory,
    Event,
    load_corpus,
    make_directory,
    make_traffic,
)
from storage import Store
from workers.settings import Settings

RESULTS = REPO / "bench" / "results"
RATES = (200, 1000, 5000)


@dataclass(frozen=True)
class Config:
    """How big each phase is; :meth:`at` scales the full-size run down."""

    scale: float
    users: int
    conversations: int
    events: int
    naive_events: int
    ceiling_events: int
    scale_events: int
    rates: tuple[int, ...]
    hold_s: float
    search_steps: int
    drain_timeout_s: float
    results: Path | None = RESULTS

    @classmethod
    def at(cls, scale: float) -> Config:
        def n(full: int, least: int) -> int:
            return max(least, int(full * scale))

        events = n(200_000, 400)
        big = scale >= 0.25

        return cls(
            scale=scale,
            users=n(10_000, 50),
            conversations=n(10_000, 50),
            events=events,
            naive_events=min(events, n(4_000, 200)),
            ceiling_events=min(events, n(40_000, 400)),
            scale_events=min(events, n(40_000, 400)),
            rates=RATES if big else RATES[:2],
            hold_s=15.0 if big else 3.0,
            search_steps=3 if big else 1,
            drain_timeout_s=1500.0 if big else 120.0,
        )


def say(text: str) -> None:
    print(text, flush=True)


async def latency_phase(
    v: Variant,
    corpus: Corpus,
    directory: Directory,
    config: Config,
    guide: float,
    out: Say,
) -> tuple[list[Step], float | None, Step | None]:
    """Fixed rates, the search for the highest steady rate, and half of it."""
    lag = Lag(
        v.settings,
        {
            v.settings.group("status"): [
                v.settings.topics.messages,
                v.settings.topics.receipts,
            ],
            v.settings.group("enrichment"): [v.settings.topics.message_changes],
        },
    )
    steps: list[Step] = []
    seed = 100

    async def step(rate: float, hold: float) -> Step | None:
        nonlocal seed
        seed += 1
        if not await quiet(v, lag, 120):
            out(f"  {v.name}: still behind before {rate:.0f}/s; stopping here")
            return None
        events = make_traffic(
            corpus,
            directory,
            max(1, int(rate * hold)),
            seed=seed,
            tag=f"r{seed}-",
        )
        result = await paced(v, lag, events, directory.participants, rate, hold, 20)
        s = result.summary()
        out(
            f"  {v.name} at {s['rate']:>5}/s for {s['seconds']:>5} s: "
            f"p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, p99.9 {s['p999_ms']} ms, "
            f"lag slope {s['lag_slope_per_s']}/s, "
            f"{'steady' if result.steady else 'falls behind'}"
        )
        return result

    async with lag:
        for rate in config.rates:
            result = await step(rate, config.hold_s)
            if result is None:
                break
            steps.append(result)
            if not result.steady:
                break
        steady = [s.rate for s in steps if s.steady]
        unsteady = [s.rate for s in steps if not s.steady]
        lo = max(steady, default=0.0)
        hi = min(unsteady, default=max(2 * lo, 2 * guide))
        best: float | None = lo or None
        for _ in range(config.search_steps):
            if hi - lo < max(0.05 * hi, 10):
                break
            mid = (lo + hi) / 2 if lo else hi / 2
            result = await step(mid, config.hold_s)
            if result is None:
                break
            steps.append(result)
            if result.steady:
                lo, best = mid, mid
            else:
                hi = mid
        half = None
        if best:
            half = await step(best / 2, config.hold_s)
            if half is not None:
                steps.append(half)

    return sorted(steps, key=lambda s: s.rate), best, half


async def drop_all(settings: Settings, variants: list[Variant]) -> None:
    """Stop what still runs; remove the run's databases and topics."""
    for v in variants:
        if v.workers is not None:
            v.workers.stop()
        if v.dtos is not None:
            await v.dtos.stop()
    store = Store.connect(settings.mongodb_uri.get_secret_value(), "admin")
    try:
        for v in variants:
            await store.client.drop_database(v.settings.mongodb_database)
    except Exception as error:
        # Clean-up after a failure must not hide the failure itself.
        print(
            f"bench: could not drop the run's databases ({type(error).__name__}); "
            "they are named after the run's topic prefix",
            file=sys.stderr,
        )
    finally:
        await store.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        names = set(await admin.list_topics())
        ours = [t for v in variants for t in v.settings.topics.all if t in names]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


async def settle(v: Variant, within_s: float, out: Say) -> None:
    """Let the workers finish what the last latency step left queued, so that
    the checks read a drained variant, not one still catching up."""
    assert v.dtos is not None
    began = time.monotonic()
    if not await v.dtos.wait(began + within_s, v.workers):
        out(f"  {v.name}: still behind {within_s:g} s after the last step")
    else:
        took = time.monotonic() - began
        out(f"  {v.name}: caught up {took:.1f} s after the last step")


def _stop(v: Variant) -> float:
    """Stop the variant's workers; return their peak RSS in MB."""
    assert v.workers is not None
    peak = v.workers.peak_rss_mb()
    v.workers.stop()

    return peak


async def run(config: Config, out: Say = say) -> dict[str, Any]:
    """Run every phase and report; returns the headline figures."""
    began = time.monotonic()
    base = Settings()
    tag = stamp()
    corpus = load_corpus()
    directory = make_directory(corpus, config.users, config.conversations)
    events = make_traffic(corpus, directory, config.events, seed=1, tag="")
    messages = sum(e.kind == "messages" for e in events)
    out(
        f"Workload: {config.users:,} users, {config.conversations:,} conversations, "
        f"{len(events):,} events ({messages:,} messages, "
        f"{len(events) - messages:,} receipts); texts from {len(corpus.texts):,} "
        "real chat lines."
    )
    variants: list[Variant] = []
    report: dict[str, Any] = {"config": config.__dict__ | {"results": None}}
    try:
        out("Store ceiling: the real handlers straight on the store, no Kafka...")
        ceiling_v = variant(base, tag, "ceiling")
        variants.append(ceiling_v)
        ceiling = await store_ceiling(
            ceiling_v.settings, directory, events[: config.ceiling_events]
        )
        out(f"  {ceiling['msgs_per_s']:,.0f} events/s over {ceiling['events']:,}")
        report["store_ceiling"] = ceiling

        batched = variant(base, tag, "batched")
        variants.append(batched)
        out(f"Batched: draining {len(events):,} prefilled events...")
        b = await drain(batched, directory, events, within_s=config.drain_timeout_s)
        out(_drained(b))
        await check_store(batched)
        steps_b, best_b, half_b = await latency_phase(
            batched, corpus, directory, config, b.msgs_per_s, out
        )
        await settle(batched, config.drain_timeout_s, out)
        rss_b = _stop(batched)
        await check_store(batched)
        check_dtos(batched, conversation_order(events))
        look = await lookups(batched.settings)
        report["lookups"] = look
        out(f"Lookups of {500} ids on FerretDB-sized collections: {json.dumps(look)}")

        naive = variant(base, tag, "naive")
        variants.append(naive)
        subset = events[: config.naive_events]
        out(f"Naive: draining the first {len(subset):,} of those events...")
        n = await drain(naive, directory, subset, within_s=config.drain_timeout_s)
        out(_drained(n))
        await check_store(naive)
        steps_n, best_n, _ = await latency_phase(
            naive,
            corpus,
            directory,
            config.__class__(**(config.__dict__ | {"search_steps": 1})),
            n.msgs_per_s,
            out,
        )
        await settle(naive, config.drain_timeout_s, out)
        rss_n = _stop(naive)
        await check_store(naive)
        check_dtos(naive, conversation_order(subset))

        scaled = events[: config.scale_events]
        scale: dict[int, Drain] = {}
        for procs in (1, 2):
            v = variant(base, tag, f"scale{procs}", procs)
            variants.append(v)
            out(f"{procs} process(es): draining {len(scaled):,} events...")
            scale[procs] = await drain(
                v, directory, scaled, processes=procs, within_s=config.drain_timeout_s
            )
            out(_drained(scale[procs]))
            _stop(v)
            await check_store(v)
            check_dtos(v, conversation_order(scaled))
    finally:
        await drop_all(base, variants)

    problems = [p for v in variants for p in v.problems]
    report |= {
        "batched": _variant_report(b, rss_b, steps_b, best_b, half_b),
        "naive": _variant_report(n, rss_n, steps_n, best_n, None)
        | {"drained_events": len(subset), "of_events": len(events)},
        "scale": {
            str(k): {"msgs_per_s": round(d.msgs_per_s, 1), "events": d.events}
            for k, d in scale.items()
        },
        "problems": problems,
        "elapsed_s": round(time.monotonic() - began, 1),
    }
    at_1000 = next((s for s in steps_b if s.rate == 1000), None)
    headline = {
        "speedup_vs_naive": round(b.msgs_per_s / n.msgs_per_s, 2),
        "fraction_of_store_ceiling": round(b.msgs_per_s / ceiling["msgs_per_s"], 3),
        "batched_msgs_per_s": round(b.msgs_per_s, 1),
        "naive_msgs_per_s": round(n.msgs_per_s, 1),
        "batched_cpu_us_per_msg": round(b.cpu_us_per_msg, 1),
        "batched_peak_rss_mb": round(rss_b, 1),
        "p99_ms_at_1000": None if at_1000 is None else at_1000.summary()["p99_ms"],
        "p99_ms_at_half_max_steady": None
        if half_b is None
        else half_b.summary()["p99_ms"],
        "max_steady_msgs_per_s": None if best_b is None else round(best_b),
        "scale_2_over_1": round(scale[2].msgs_per_s / scale[1].msgs_per_s, 2),
        "correct": not problems,
    }
    report["headline"] = headline
    _table(report, out)
    if config.results is not None:
        _write(config.results, tag, report, out)
    out(json.dumps(headline))

    return headline


def _drained(d: Drain) -> str:
    return (
        f"  {d.events:,} events in {d.seconds:.1f} s: {d.msgs_per_s:,.0f}/s, "
        f"{d.cpu_us_per_msg:,.0f} us CPU per event in the workers"
    )


def _variant_report(
    d: Drain, rss: float, steps: list[Step], best: float | None, half: Step | None
) -> dict[str, Any]:
    return {
        "drain_msgs_per_s": round(d.msgs_per_s, 1),
        "drain_seconds": round(d.seconds, 1),
        "drain_events": d.events,
        "cpu_us_per_msg": round(d.cpu_us_per_msg, 1),
        "peak_rss_mb": round(rss, 1),
        "max_steady_msgs_per_s": None if best is None else round(best),
        "at_half_max_steady": None if half is None else half.summary(),
        "steps": [s.summary() for s in steps],
    }


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and not math.isnan(x):
        return f"{x:,.1f}"
    return str(x)


def _table(report: dict[str, Any], out: Say) -> None:
    b, n = report["batched"], report["naive"]
    rows = [
        ("drain throughput (events/s)", b["drain_msgs_per_s"], n["drain_msgs_per_s"]),
        ("events drained", b["drain_events"], n["drain_events"]),
        ("worker CPU (us/event)", b["cpu_us_per_msg"], n["cpu_us_per_msg"]),
        ("peak worker RSS (MB)", b["peak_rss_mb"], n["peak_rss_mb"]),
        (
            "highest steady rate (/s)",
            b["max_steady_msgs_per_s"],
            n["max_steady_msgs_per_s"],
        ),
    ]
    by_rate: dict[int, dict[str, dict[str, Any]]] = {}
    for name, v in (("b", b), ("n", n)):
        for s in v["steps"]:
            by_rate.setdefault(s["rate"], {})[name] = s
    for rate in sorted(by_rate):
        got = by_rate[rate]
        for q in ("p50_ms", "p99_ms", "p999_ms"):
            rows.append(
                (
                    f"latency {q[:-3]} at {rate}/s (ms)",
                    _cell(got.get("b"), q),
                    _cell(got.get("n"), q),
                )
            )
    out("")
    out(f"{'':36} {'batched':>14} {'naive':>14}")
    for label, x, y in rows:
        out(f"{label:36} {_fmt(x):>14} {_fmt(y):>14}")
    c = report["store_ceiling"]
    out(f"{'store ceiling (events/s)':36} {_fmt(c['msgs_per_s']):>14}")
    for k, v in report["scale"].items():
        out(f"{k + ' process(es) drain (events/s)':36} {_fmt(v['msgs_per_s']):>14}")
    for p in report["problems"]:
        out(f"PROBLEM: {p}")
    out("")


def _cell(step: dict[str, Any] | None, q: str) -> Any:
    if step is None:
        return None
    value = step[q]
    return f"{value:,.1f}{'' if step['steady'] else '*'}" if value is not None else "-"


def _write(folder: Path, tag: str, report: dict[str, Any], out: Say) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"bench-{tag}.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    chart = folder / f"bench-{tag}.png"
    _chart(report, chart)
    out(f"Wrote {path.relative_to(REPO)} and {chart.relative_to(REPO)}")


def _chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, style in (("batched", "o-"), ("naive", "s--")):
        steps = report[name]["steps"]
        for q, alpha in (("p50_ms", 0.5), ("p99_ms", 1.0)):
            pts = [(s["rate"], s[q]) for s in steps if s[q] is not None]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, style, alpha=alpha, label=f"{name} {q[:-3]}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("input rate (events/s)")
    ax.set_ylabel("end-to-end latency (ms)")
    ax.set_title("Courier: input record to DTO at a client")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["Config", "Directory", "Event", "Workers", "run"]
