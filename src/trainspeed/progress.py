"""Live progress of a run: a Rich bar per epoch in a terminal, one plain line per epoch elsewhere.

In a terminal the bar shows steps done, the running loss and accuracy, ms/step and images/s as
Keras shows them, and the epoch's ETA, within 80 columns. In a pipe or a log file (Keras's
`verbose=2`), every epoch ends in one line and nothing redraws.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

# Seconds between progress reports from the training loop, on every engine. A report reads the
# running sums without waiting for the device (CUDA: a background copy), so it costs host time only:
# benchmarks/progress_cost.py measures it.
REPORT_SECONDS = 0.2


def _rate(steps: int, seconds: float, batch_size: int | None, images: int | None = None) -> str:
    """ms/step, and images/s where the batch is known: the images the steps trained on (the last batch
    of an epoch may be partial, so never more than the epoch's `images`)."""
    if steps <= 0 or seconds <= 0:
        return "-"
    per_step = seconds / steps * 1e3
    text = f"{per_step:.0f} ms/step" if per_step >= 10 else f"{per_step:.1f} ms/step"
    if not batch_size:
        return text
    trained = min(steps * batch_size, images) if images else steps * batch_size
    return text + f", {trained / seconds:,.0f} img/s"


def batch_of(label: str) -> int | None:
    """The batch size a progress label names ('cnn on cpu, batch 32: epoch 1/3'), for images/s."""
    _, found, rest = label.partition("batch ")
    digits = rest.split(":")[0].split(",")[0].strip()
    return int(digits) if found and digits.isdigit() else None


class EpochProgress:
    """Rich's bars, redrawn by hand from the training loop's reports.

    Rich normally redraws from a background thread ten times a second; on a 2-core machine that
    thread competes with the CPU case being timed, so we redraw only when the loop reports.
    """

    def __init__(self, console: Console | None = None, min_interval_s: float = REPORT_SECONDS) -> None:
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal
        self._min_interval_s = min_interval_s
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=12), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]} acc {task.fields[accuracy]}"),
            TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(compact=True),
            console=self.console, auto_refresh=False, disable=not self.live,
        )
        self._task = None
        self._label = ""
        self._images: int | None = None
        self._started = 0.0
        self._last_draw = 0.0

    def __enter__(self) -> EpochProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def start_epoch(self, label: str, steps: int, images: int | None = None) -> None:
        # The case on a line of its own, the epoch on the bar's: the bar then fits 80 columns.
        case, _, epoch = label.rpartition(": ")
        if self.live and case and case != self._label.rpartition(": ")[0]:
            self.message(case)  # a plain epoch line names its case itself
        self._label, self._started, self._images = label, time.perf_counter(), images
        if self.live:
            self._task = self._progress.add_task(epoch or label, total=steps, loss="-", accuracy="-", rate="")
            self._progress.refresh()

    def update(self, step: int, steps: int, loss: float, accuracy: float, elapsed_s: float | None = None) -> None:
        """`elapsed_s`: the epoch's time so far as the training process read it (a case's child sends it,
        since its events may arrive in bunches); else read here."""
        # NaN: the device has not finished the steps yet, and waiting for it would skew the timing.
        known = loss == loss
        now = time.perf_counter()
        elapsed = elapsed_s if elapsed_s is not None else now - self._started
        # The bar stays within 80 columns with ms/step alone; a plain line has room for images/s too.
        rate = _rate(step, elapsed, None if self.live else batch_of(self._label), self._images)
        if not self.live:
            if step == steps:  # one line per epoch, as Keras's verbose=2
                shown = f"loss {loss:.4f} - accuracy {accuracy:.4f}" if known else "loss - accuracy -"
                self.console.print(f"{self._label}: {step}/{steps} - {elapsed:.1f}s - {rate} - {shown}",
                                   highlight=False, soft_wrap=True)
            return
        self._progress.update(self._task, completed=step, loss=f"{loss:.4f}" if known else "-",
                              accuracy=f"{accuracy:.3f}" if known else "-", rate=rate)
        if step == steps:
            # A finished epoch leaves the live display for a line of its own, as Keras's do: the next
            # case's heading then stands above its own epochs, never above the last case's bars.
            task = next(task for task in self._progress.tasks if task.id == self._task)
            self._progress.remove_task(self._task)
            self._progress.console.print(
                f"{task.description} {steps}/{steps} - {elapsed:.1f}s - {rate} - loss {task.fields['loss']} "
                f"acc {task.fields['accuracy']}", highlight=False)
            self._progress.refresh()
        elif now - self._last_draw >= self._min_interval_s:
            self._progress.refresh()
            self._last_draw = now

    def message(self, text: str) -> None:
        self._progress.console.print(text, soft_wrap=not self.live)
