"""Pure arithmetic on measurements, testable without any device."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass


def first_and_steady(epoch_s: Sequence[float]) -> tuple[float, float]:
    """First epoch (carries start-up costs) and the steady epoch time (median of the rest).

    With a single epoch there is nothing else to take: the caller warms up beforehand so that
    this one epoch is already steady.
    """
    if not epoch_s:
        raise ValueError("no epochs were timed")
    first = float(epoch_s[0])
    return first, float(statistics.median(epoch_s[i] for i in steady_epochs(len(epoch_s))))


def steady_epochs(count: int) -> range:
    """The epochs the steady figures rest on, out of `count`: all but the first, or the only one.
    The steady time and the steady energy both use it, so they describe the same epochs."""
    return range(1, count) if count > 1 else range(count)


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


# A steady time whose spread is above this is flagged: differences smaller than the noise are not results.
NOISY_CV = 0.05


@dataclass(frozen=True)
class Spread:
    median: float
    minimum: float
    maximum: float
    cv: float  # coefficient of variation: standard deviation / mean (population)
    samples: int

    @property
    def noisy(self) -> bool:
        return self.cv > NOISY_CV


def spread(values: Sequence[float]) -> Spread:
    if not values:
        raise ValueError("no values to summarize")
    mean = statistics.fmean(values)
    cv = statistics.pstdev(values) / mean if len(values) > 1 and mean > 0 else 0.0
    return Spread(float(statistics.median(values)), float(min(values)), float(max(values)), cv, len(values))


def median_of(items: Sequence, name: str) -> float | None:
    """The median of one field over records (repeats' figures), those without it left out; None if none has it."""
    values = [getattr(item, name) for item in items if getattr(item, name) is not None]
    return float(statistics.median(values)) if values else None


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie, interpolated between the two nearest ranks
    (NumPy's default, 'linear'): percentile(x, 0.5) is the median, percentile(x, 0.95) the p95."""
    if not values:
        raise ValueError("no values to summarize")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"a fraction must be from 0 to 1, got {fraction}")
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return float(ordered[below] + (ordered[above] - ordered[below]) * (position - below))


def projected_epoch_s(step_seconds: Sequence[float], images: int, batch_size: int) -> float:
    """An epoch's time from timed steady steps: the median step, scaled to the epoch's images.

    The last partial batch costs roughly its share of a full one, so images / batch_size steps.
    """
    if not step_seconds:
        raise ValueError("no steps were timed")
    return float(statistics.median(step_seconds)) * images / batch_size


def largest_fitting(fits: Callable[[int], bool], start: int = 1, limit: int = 1 << 20) -> int | None:
    """The largest batch size for which `fits` holds: doubling from `start`, then bisection.

    Assumes that if a batch fits, every smaller one does. None when even `start` does not fit.
    """
    if not fits(start):
        return None
    good, bad = start, None
    while bad is None:
        candidate = good * 2
        if candidate > limit:
            return good
        if fits(candidate):
            good = candidate
        else:
            bad = candidate
    while bad - good > 1:
        middle = (good + bad) // 2
        if fits(middle):
            good = middle
        else:
            bad = middle
    return good


# Two-sided 95%: the usual bar for calling a difference more than chance.
Z_95 = 1.959964


def difference_half_width(p1: float, n1: int, p2: float, n2: int, z: float = Z_95) -> float:
    """Half-width of the confidence interval of p1 - p2, two binomial proportions (normal approximation).

    The precisions are scored on the same test images, so this unpaired interval is conservative: it
    calls a departure only when even independent samples could not explain it.
    """
    if n1 <= 0 or n2 <= 0:
        raise ValueError("a proportion needs at least one trial")
    return z * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
