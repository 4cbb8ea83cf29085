"""Summaries of timing samples, shared by the benchmark's parts."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def summary(samples_ns: Sequence[int]) -> dict[str, float]:
    """Median, p99, mean and max of nanosecond samples, in microseconds."""
    ordered = sorted(samples_ns)
    n = len(ordered)
    if not n:
        return {"count": 0, "median_us": 0.0, "p99_us": 0.0, "mean_us": 0.0, "max_us": 0.0}
    return {
        "count": n,
        "median_us": statistics.median(ordered) / 1000,
        "p99_us": ordered[min(n - 1, int(n * 0.99))] / 1000,
        "mean_us": sum(ordered) / n / 1000,
        "max_us": ordered[-1] / 1000,
    }
