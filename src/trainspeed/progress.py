"""Live progress of a run in the terminal: one Rich bar per epoch with ETA, loss and accuracy."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# Training steps between progress reports, on every engine: each costs a little host work.
REPORT_EVERY = 50


class EpochProgress:
    """Rich's bars, refreshed by hand from the training loop.

    Rich normally redraws from a background thread ten times a second; on a 2-core machine
    that thread competes with the CPU case being timed, so we redraw only when the loop
    reports, at most a few times a second.
    """

    def __init__(self, console: Console | None = None, min_interval_s: float = 0.25) -> None:
        self.console = console or Console(stderr=True)
        self._min_interval_s = min_interval_s
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  acc {task.fields[accuracy]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=self.console, auto_refresh=False,
        )
        self._task = None
        self._last_draw = 0.0

    def __enter__(self) -> EpochProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def start_epoch(self, label: str, steps: int) -> None:
        self._task = self._progress.add_task(label, total=steps, loss="-", accuracy="-")
        self._progress.refresh()

    def update(self, step: int, steps: int, loss: float, accuracy: float) -> None:
        # NaN: the device has not finished the steps yet, and waiting for it would skew the timing.
        known = loss == loss
        self._progress.update(self._task, completed=step, loss=f"{loss:.4f}" if known else "-",
                              accuracy=f"{accuracy:.3f}" if known else "-")
        now = time.perf_counter()
        if step == steps or now - self._last_draw >= self._min_interval_s:
            self._progress.refresh()
            self._last_draw = now

    def message(self, text: str) -> None:
        self._progress.console.print(text)
