"""``python -m bench``: what ``make bench`` runs. See README, Performance."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from bench.main import Config, run


def main() -> None:
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    if not 0 < scale <= 1:
        sys.exit("BENCH_SCALE must be a number above 0 and at most 1.")
    # The client retries on its own; its warnings would only blur the report.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    asyncio.run(run(Config.at(scale)))


if __name__ == "__main__":
    main()
