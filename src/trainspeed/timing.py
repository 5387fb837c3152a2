"""The one timer behind every reported duration.

Device work is asynchronous: without a synchronize at both ends a timer measures how fast
kernels are queued, not how fast they run. The clock is injectable so the timer is testable.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Measurement:
    label: str
    seconds: float = 0.0


class Timer:
    def __init__(
        self,
        synchronize: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._synchronize = synchronize
        self._clock = clock
        self.records: dict[str, list[float]] = defaultdict(list)

    @contextmanager
    def measure(self, label: str) -> Iterator[Measurement]:
        measurement = Measurement(label)
        # Drain work queued before the region so it is not billed to it.
        self._synchronize()
        start = self._clock()
        try:
            yield measurement
        finally:
            self._synchronize()
            measurement.seconds = self._clock() - start
            self.records[label].append(measurement.seconds)

    def total(self, label: str) -> float:
        return sum(self.records.get(label, ()))
