"""Pure arithmetic on measurements, testable without any device."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def first_and_steady(epoch_s: Sequence[float]) -> tuple[float, float]:
    """First epoch (carries start-up costs) and the steady epoch time (median of the rest).

    With a single epoch there is nothing else to take: the caller warms up beforehand so that
    this one epoch is already steady.
    """
    if not epoch_s:
        raise ValueError("no epochs were timed")
    first = float(epoch_s[0])
    rest = epoch_s[1:] or epoch_s
    return first, float(statistics.median(rest))


def images_per_second(images: int, seconds: float) -> float:
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {seconds}")
    return images / seconds


def speedup(baseline_s: float, device_s: float) -> float:
    """How many times faster the device is than the baseline for the same work."""
    if baseline_s <= 0 or device_s <= 0:
        raise ValueError("durations must be positive")
    return baseline_s / device_s


def steps_per_epoch(images: int, batch_size: int) -> int:
    # The last partial batch is kept, as Keras's fit does (50,000 / 32 -> 1,563 steps).
    return -(-images // batch_size)
