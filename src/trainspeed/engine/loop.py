"""One epoch of training, as the seeds' model.fit(shuffle=True) runs it."""

from __future__ import annotations

import time

import torch

from ..models import ModelSpec
from ..progress import REPORT_SECONDS
from ..timing import Timer
from .graph import StepGraph
from .step import EpochStats, EpochSteps, StepCallback


def train_epoch(
    spec: ModelSpec,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int,
    generator: torch.Generator,
    on_progress: StepCallback | None = None,
    report_s: float = REPORT_SECONDS,
    max_steps: int | None = None,
    precision: str = "fp32",
    first_step_timer: Timer | None = None,
    graph: StepGraph | None = None,
) -> EpochStats:
    """One pass over the data in a fresh random order, as Keras's fit(shuffle=True) does.

    With `first_step_timer`, the first step is timed on its own ("first step"): it carries the
    start-up costs a notebook's one-epoch timing includes.
    """
    steps_of_epoch = EpochSteps(spec, optimizer, images, labels, batch_size, generator, precision, graph)
    steps = steps_of_epoch.steps if max_steps is None else min(steps_of_epoch.steps, max_steps)
    done = 0
    if first_step_timer is not None and steps:
        with first_step_timer.measure("first step"):
            steps_of_epoch.run(0, 1)
        done = 1
    # Reports by the clock, not by step count: a bar that moves a few times a second whether a step
    # takes 50 us or 50 ms. A reading of the clock per step is ~0.1 us against steps of 0.1 ms and more.
    next_report = time.perf_counter() + report_s
    while done < steps:
        steps_of_epoch.run(done, 1)
        done += 1
        if on_progress is not None and (done == steps or time.perf_counter() >= next_report):
            # The last report waits for the device, as the epoch's timer is about to: its loss is then
            # known and its elapsed time the device's, where a peek shows what the host has queued.
            loss, accuracy = steps_of_epoch.stats() if done == steps else steps_of_epoch.peek()
            on_progress(done, steps, loss, accuracy)
            next_report = time.perf_counter() + report_s
    return steps_of_epoch.stats()
