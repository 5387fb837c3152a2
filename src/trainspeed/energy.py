"""Energy per case: its figures, and the arithmetic that makes them from meter readings.

Pure: the meters that read NVML, RAPL or the user's --cpu-watts are in machine/power.py; prices in
prices.py. A figure here is measured (a counter, or power samples integrated), or an estimate
labelled as one, or absent with the reason: never filled in from elsewhere.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial

from .stats import median_of, steady_epochs

# The seeds' recipe: what "is it worth it" is asked about is ten epochs of training.
RECIPE_EPOCHS = 10

# Points of a power trace kept in the results (the report's system chart needs no more).
TRACE_POINTS = 400

# (seconds since the case's first timed epoch began, watts or None, utilization 0-1 or None)
Sample = tuple[float, float | None, float | None]

# NVML's utilization is the share of its last sample period (1/6 to 1 s, by board) in which a kernel ran:
# a reading taken sooner than this into an epoch covers idle time before it, so it does not count.
UTILIZATION_SETTLE_S = 1.0


@dataclass(frozen=True)
class EnergyFigures:
    """What a case's device drew while it trained, or why that is not known."""

    source: str | None = None  # what was read: "NVML energy counter (GPU board)", RAPL domains, or the estimate's basis
    estimate: bool = False  # from --cpu-watts and the time: not measured
    joules_per_epoch: float | None = None  # over the steady epochs, as the steady epoch time is
    joules_per_image: float | None = None
    average_w: float | None = None  # over the steady epochs
    peak_w: float | None = None  # highest sample during training
    utilization: float | None = None  # the GPU's mean busy fraction while training (NVML)
    trace: tuple[Sample, ...] = ()  # power and utilization over the case's epochs, for the system chart
    not_measured: str | None = None  # why there are no figures

    @property
    def recipe_wh(self) -> float | None:
        """Watt-hours for the seeds' ten epochs at the steady epoch's energy."""
        return None if self.joules_per_epoch is None else self.joules_per_epoch * RECIPE_EPOCHS / 3600


def counter_delta(before: float, after: float, counter_range: float) -> float:
    """Energy between two readings of a counter that wraps to 0 past `counter_range` (RAPL's
    max_energy_range_uj): readings must come more often than one wrap, which the sampler sees to."""
    return after - before if after >= before else after + counter_range - before


def trapezoid(t0: float, w0: float, t1: float, w1: float) -> float:
    """Joules between two power readings, the power taken to change linearly between them."""
    return (w0 + w1) / 2 * (t1 - t0)


def figures(epoch_j: Sequence[float], epoch_s: Sequence[float], images_per_epoch: int, trace: Sequence[Sample],
            source: str, estimate: bool = False,
            epoch_spans: Sequence[tuple[float, float]] = ()) -> EnergyFigures:
    """A repeat's energy figures from each timed epoch's joules and seconds: per epoch the median
    over the steady epochs, as the steady time is; average power their joules over their seconds;
    peak power from the samples inside them (`epoch_spans`, in the trace's time), and utilization from
    those taken at least UTILIZATION_SETTLE_S into one."""
    steady = steady_epochs(len(epoch_j))
    joules = statistics.median(epoch_j[i] for i in steady)
    spans = [epoch_spans[i] for i in steady] if len(epoch_spans) == len(epoch_j) else []
    inside = [sample for sample in trace if any(low <= sample[0] <= high for low, high in spans)] if spans else trace
    watts = [w for _, w, _ in inside if w is not None]
    # Only where epochs are long enough for a reading to cover them alone: sub-second epochs get none.
    busy = [u for at, _, u in trace if u is not None
            and any(low + UTILIZATION_SETTLE_S <= at <= high for low, high in spans)]
    return EnergyFigures(source=source, estimate=estimate, joules_per_epoch=joules,
                         joules_per_image=joules / images_per_epoch,
                         average_w=sum(epoch_j[i] for i in steady) / sum(epoch_s[i] for i in steady),
                         peak_w=max(watts) if watts else None, utilization=statistics.fmean(busy) if busy else None,
                         trace=thinned(trace))


def thinned(trace: Sequence[Sample], limit: int = TRACE_POINTS) -> tuple[Sample, ...]:
    """At most `limit` samples, evenly spaced through the trace, the first and last kept."""
    if len(trace) <= limit:
        return tuple(trace)
    step = (len(trace) - 1) / (limit - 1)
    return tuple(trace[round(i * step)] for i in range(limit))


def fold(repeats: Sequence[EnergyFigures | None]) -> EnergyFigures | None:
    """A case's figures from its repeats': medians of the measured ones, the highest peak, the
    first measured repeat's trace; else the first reason nothing was measured."""
    known = [r for r in repeats if r is not None]
    measured = [r for r in known if r.joules_per_epoch is not None]
    if len(measured) < 2:
        return measured[0] if measured else (known[0] if known else None)
    median = partial(median_of, measured)
    peaks = [r.peak_w for r in measured if r.peak_w is not None]
    return replace(measured[0], joules_per_epoch=median("joules_per_epoch"),
                   joules_per_image=median("joules_per_image"), average_w=median("average_w"),
                   utilization=median("utilization"), peak_w=max(peaks) if peaks else None)
