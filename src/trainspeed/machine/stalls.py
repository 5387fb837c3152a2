"""Noticing that the measuring process stopped running: a stall makes every time around it false.

A process stopped by SIGSTOP (Ctrl-Z, a debugger, a job scheduler), a frozen virtual machine or
a host swapping hard keeps its clock running while it does no work, so an epoch timed across the
stop is too long by the whole stop. A small thread wakes every `interval_s`; when it wakes much
later than asked and the process used no CPU time meanwhile, the process (all of its threads)
was not running. A thread can also be late because other code held the GIL (TensorFlow builds
and JAX compiles a step holding it for half a second): the process then kept using the CPU, and
that is work, not a stall. A process merely sharing the CPU with others is late by milliseconds.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

# A stall longer than this share of the timed work spoils the case's times.
STALL_TOLERANCE = 0.01


class StallWatch:
    """`with StallWatch() as watch: ...`, then `watch.stalled_s`: seconds the process did not run."""

    def __init__(self, interval_s: float = 0.1, threshold_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.threshold_s = threshold_s
        self.stalls: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="trainspeed-stall-watch", daemon=True)

    def _watch(self) -> None:
        last, last_cpu = time.monotonic(), time.process_time()
        while not self._stop.wait(self.interval_s):
            last, last_cpu = self._note(last, last_cpu)
        self._note(last, last_cpu)  # a stall that ended just before the watch did

    def _note(self, last: float, last_cpu: float) -> tuple[float, float]:
        now, cpu = time.monotonic(), time.process_time()
        late = now - last - self.interval_s
        # Wall time in which not one of the process's threads ran: stopped, frozen or swapped out.
        idle = (now - last) - (cpu - last_cpu)
        if late > self.threshold_s and idle > self.threshold_s:
            self.stalls.append(min(late, idle))
        return now, cpu

    @property
    def stalled_s(self) -> float:
        return sum(self.stalls)

    def __enter__(self) -> StallWatch:
        self._thread.start()
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()


def spoils(stalled_s: float | None, timed_s: float) -> bool:
    """Whether a stall of `stalled_s` makes `timed_s` of measured time untrustworthy."""
    return bool(stalled_s) and stalled_s > STALL_TOLERANCE * timed_s


def stall_reason(stalled_s: float) -> str:
    return (f"the process was stopped or starved for {stalled_s:.1f} s while it was being timed (a SIGSTOP or "
            "Ctrl-Z, a frozen virtual machine, heavy swapping): its times are not the hardware's; run the case "
            "again (`trainspeed run --resume` measures it anew)")
