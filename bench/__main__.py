"""``python -m bench``: what ``make bench`` runs. See README, Performance."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from bench.main import Config, run


def main() -> None:
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    if not 0 < scale <= 1:
        sys.exit("BENCH_SCALE must be a number above 0 and at most 1.")
    # The client retries on its own; its warnings would only blur the report.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    try:
        asyncio.run(_until_signalled(Config.at(scale)))
    except asyncio.CancelledError:
        sys.exit("bench: stopped by a signal; its workers and databases are gone")


async def _until_signalled(config: Config) -> None:
    """Run the bench; SIGTERM or SIGINT cancel it, so that its clean-up runs."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    await run(config)


if __name__ == "__main__":
    main()
