"""One refresh round of the decision mirror with many held keys, in-process against Redis: all
held keys in use (what every round read before the mirror forgot unused keys), the round that
drops the unused ones, and the rounds after it (only the keys in use). Appends its figures to
RESULTS.md; without REDIS_URL (as `make bench` runs it) it says so and measures nothing.

    REDIS_URL=redis://127.0.0.1:6379/N .venv/bin/python benchmarks/mirror_refresh.py \
        [--held 100000] [--used 1000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aforo.settings")
if not os.environ.get("REDIS_URL"):
    print("benchmarks/mirror_refresh.py: set REDIS_URL (a Redis database to write into); skipped")
    sys.exit(0)

import django  # noqa: E402

django.setup()

from aforo.shared_cache import shared_cache  # noqa: E402
from benchmarks.common import record  # noqa: E402
from margin_guard import decision  # noqa: E402

PROFILE = {"level": 2, "mode": "ENFORCE", "downgrade": {"gpt-4o": "gpt-4o-mini"}, "premium": [],
           "rate": None, "override_until": None, "margin_pct": "12.5"}


def _round() -> tuple[float, int]:
    began = time.perf_counter()
    read = decision.mirror_refresh()
    return time.perf_counter() - began, read


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--held", type=int, default=100_000)
    parser.add_argument("--used", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    keys = [f"aforo:guard:bench-mirror:c{i}:" for i in range(args.held)]
    cache = shared_cache()
    for start in range(0, len(keys), 1000):
        cache.set_many({k: PROFILE for k in keys[start:start + 1000]}, 600)
    every, drop, after = [], [], []
    for _ in range(args.repeat):
        decision.mirror_forget()
        now = time.monotonic()
        for k in keys:
            decision._mirror[k] = (now, PROFILE)
            decision._mirror_used[k] = now
        seconds, read = _round()
        every.append(seconds)
        assert read == args.held
        old = now - decision.MIRROR_KEEP_S - 1
        for k in keys[args.used:]:
            decision._mirror_used[k] = old
        seconds, read = _round()
        drop.append(seconds)
        assert read == args.used and len(decision._mirror) == args.used
        seconds, read = _round()
        after.append(seconds)
        assert read == args.used
    decision.mirror_forget()
    cache.delete_many(keys)
    med = statistics.median
    record(f"Decision mirror refresh round, {args.held:,} held, {args.used:,} in use "
           f"(benchmarks/mirror_refresh.py, median of {args.repeat})", [
        "| round | ms |", "| --- | --- |",
        f"| all held keys in use (the reference) | {med(every) * 1000:.1f} |",
        f"| the round that drops the unused keys | {med(drop) * 1000:.1f} |",
        f"| after: only the keys in use | {med(after) * 1000:.2f} |",
        "", f"Reference / after: {med(every) / med(after):.0f}x; "
        f"load average at the end {os.getloadavg()[0]:.1f}."])

if __name__ == "__main__":
    main()
