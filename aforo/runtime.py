"""Process-level tuning shared by the server entry point and the benchmarks that stand in for it."""
from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Move everything loaded at start-up out of the garbage collector's generations.

    Django, DRF, chdb and the app's modules live as long as the process. Left in the oldest
    generation, every full collection walks them again, and a response that builds 10,000
    rows (/by-customer) triggers one: 60–100 ms pauses measured at the p95. Frozen, a full
    collection walks only what requests created since.
    """
    gc.collect()
    gc.freeze()
