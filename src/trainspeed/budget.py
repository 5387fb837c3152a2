"""--time-budget: when a case would overrun its budget, time steady steps and project the epoch.

The steps timed are the case's own (replayed from its CUDA graph where it has one), so the
projection is of the steps the case would run, not of some slower stand-in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from .engine.step import EpochSteps
from .stats import projected_epoch_s
from .timing import Timer


class Projection(NamedTuple):
    steady_epoch_s: float
    measured_steps: int  # timed steady steps the projection rests on
    train_loss: float
    train_accuracy: float


def project(steps: EpochSteps, images: int, batch_size: int, epochs: int, budget_s: float, timer: Timer,
            progress, label: str, report: Callable[[int, int, float, float], None]) -> Projection | None:
    """Time blocks of steady steps within `budget_s`; None when the whole case fits the budget
    (it is then run in full). The first step is timed on its own, as in a full run."""
    warm = max(1, min(10, steps.steps // 4))
    with timer.measure("first step"):
        steps.run(0, 1)
    with timer.measure("warm-up block"):  # the rest of the start-up costs land here and are not used
        steps.run(1, warm - 1)
    with timer.measure("block") as measured:
        steps.run(warm, warm)
    per_step = [measured.seconds / warm]
    if per_step[0] * images / batch_size * epochs <= budget_s:
        return None
    progress.start_epoch(f"{label}: over the {budget_s:g} s budget, projecting from steady steps", steps.steps,
                         images)
    # Blocks of about a twentieth of the budget: long enough to time well, many enough for a median.
    block = max(warm, int(budget_s / 20 / max(per_step[0], 1e-9)))
    done = 2 * warm
    spent = ("first step", "warm-up block", "block")
    while done < steps.steps and sum(timer.total(k) for k in spent) < budget_s:
        count = min(block, steps.steps - done)
        with timer.measure("block") as measured:
            steps.run(done, count)
        if count == block:
            per_step.append(measured.seconds / count)
        done += count
        loss, accuracy = steps.stats()
        report(done, steps.steps, loss, accuracy)
    steady = projected_epoch_s(per_step, images, batch_size)
    loss, accuracy = steps.stats()
    progress.message(f"{label}: projected {steady:.2f} s per epoch from {done - warm} timed steps "
                     "(not trained to the end: no accuracy)")
    return Projection(steady, done - warm, loss, accuracy)
