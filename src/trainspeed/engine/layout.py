"""Which activation layout a convolutional model trains fastest in on a device, measured.

Channels-last suited oneDNN's convolutions on the CPU it was tuned on (benchmarks/RESULTS.md), but
the answer depends on the chip and its library (oneDNN on another CPU; cuDNN, the GPU and the
precision), so it is measured on every device, on the case's own steps, rather than assumed. The
layout changes no formula, only where values sit in memory, but each layout's kernels sum in their
own order, so the two round differently.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..models import ModelSpec
from ..timing import Timer
from .graph import StepGraph
from .step import EpochSteps

LAYOUTS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


def layout_name(memory_format: torch.memory_format) -> str:
    return next(name for name, value in LAYOUTS.items() if value == memory_format)


def step_seconds(build: Callable[[torch.memory_format], tuple[ModelSpec, torch.optim.Optimizer]],
                 memory_format: torch.memory_format, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 precision: str, timer: Timer, graphs: bool, warm: int = 10, timed: int = 30) -> float:
    """Seconds per training step of a throwaway model in `memory_format`, as the case would step."""
    spec, optimizer = build(memory_format)
    graph = StepGraph(spec, optimizer, images, labels, batch_size, precision) if graphs else None
    if graph is not None:
        graph.prepare()
    steps = EpochSteps(spec, optimizer, images, labels, batch_size, torch.Generator().manual_seed(0),
                       precision, graph)
    # Only full batches: a partial one would time a different step.
    full = max(1, len(images) // batch_size)
    steps.run(0, min(warm, full))
    done, seconds = 0, 0.0
    while done < timed:
        count = min(timed - done, full)
        with timer.measure("layout probe") as measured:
            steps.run(0, count)
        seconds += measured.seconds
        done += count
    return seconds / timed


# A timing decides a layout only when it is clearly better: two layouts round differently, so a
# coin-toss choice between near-equal ones would change a seed's losses from one run to the next.
MARGIN = 0.10
DEFAULT = "channels_last"


def choose(seconds: dict[str, float], *, margin: float = MARGIN) -> tuple[str, str]:
    """The layout to train in, and the sentence that records why: the default, unless another was
    measured faster by more than `margin` of the default's time."""
    figures = " vs ".join(f"{name} {value * 1e3:.3f} ms" for name, value in seconds.items())
    fastest = min(seconds, key=seconds.get)
    reference = seconds.get(DEFAULT)
    if reference is None or (fastest != DEFAULT and reference - seconds[fastest] > margin * reference):
        return fastest, f"{fastest}: fastest step measured on this device ({figures} per step)"
    if fastest == DEFAULT:
        return DEFAULT, f"{DEFAULT}: fastest step measured on this device ({figures} per step)"
    return DEFAULT, (f"{DEFAULT}: no layout measured more than {margin:.0%} faster than the default on this "
                     f"device ({figures} per step)")
