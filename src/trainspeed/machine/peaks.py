"""What a device can do at best, measured: the ceilings a training step is judged against."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from ..timing import Timer
from . import precision as modes
from . import validity
from .devices import empty_cache, synchronize
from .precision import matmul_dtype

# An accelerator's clocks ramp up under load: one warm-up matmul (a bf16 8192^3 is ~1.5 ms on an H100)
# may end before they have, and a peak read low inflates every MFU. Busy for this long first.
ACCELERATOR_WARMUP_S = 0.5


@dataclass
class Peaks:
    """What a device can do at best, measured: the ceilings a training step is judged against."""

    matmul_flops_per_s: float
    bandwidth_bytes_per_s: float
    matmul_size: int
    copy_bytes: int
    precision: str = "fp32"  # of the matmul
    under_load: bool = False  # other programs used the CPU through every attempt: the peaks read low


def measure_peaks(device: torch.device, precision: str = "fp32", repeats: int = 3, attempts: int = 3) -> Peaks:
    """The best of a few large matmuls in `precision` and of large memory-bound operations on the
    device, timed with sync. The process's matmul mode is set here, for every caller: a "tf32" peak
    measured in fp32 mode is an fp32 peak (H100: ~67 vs ~495 TFLOP/s). On a CPU that other programs
    are using, measured again, up to `attempts` times in all: a peak read low would inflate every MFU
    and lower every floor. If the load never lifts, the peaks say so (`under_load`)."""
    modes.apply(precision)
    best = None
    for _ in range(attempts):
        before = validity.Snapshot.take()
        found = _measure_once(device, precision, repeats)
        found.under_load = validity.under_load(device, before, validity.Snapshot.take())
        if best is not None:
            found.matmul_flops_per_s = max(found.matmul_flops_per_s, best.matmul_flops_per_s)
            found.bandwidth_bytes_per_s = max(found.bandwidth_bytes_per_s, best.bandwidth_bytes_per_s)
        best = found
        if not found.under_load:
            break
    return best


def _measure_once(device: torch.device, precision: str, repeats: int) -> Peaks:
    timer = Timer(synchronize=lambda: synchronize(device))
    size = 2048 if device.type == "cpu" else 8192
    a = torch.randn(size, size, device=device, dtype=matmul_dtype(precision))
    b = torch.randn(size, size, device=device, dtype=matmul_dtype(precision))
    # Kernel selection and thread start on any device; on an accelerator, its clocks' ramp as well.
    warm_up(partial(torch.mm, a, b), partial(synchronize, device), ACCELERATOR_WARMUP_S if device.type != "cpu" else 0)
    for _ in range(repeats):
        with timer.measure("matmul"):
            torch.mm(a, b)
    del a, b
    copy_bytes = (256 if device.type == "cpu" else 1024) * 2**20
    source = torch.ones(copy_bytes // 4, device=device)
    target = torch.empty_like(source)
    # STREAM's habit: the best of a copy (read and write) and a scale-add (two reads, one write). Which
    # comes nearer the memory's limit depends on the chip: on many CPUs a copy's write first reads the
    # line it overwrites, uncounted, and reads a copy as 2/3 of what memory moved. A floor computed from
    # a bandwidth read low would be no floor at all.
    moved = {"copy": 2 * copy_bytes, "scale-add": 3 * copy_bytes}
    operations = {"copy": lambda a, b: a.copy_(b), "scale-add": lambda a, b: a.add_(b, alpha=0.5)}
    for name, operation in operations.items():
        operation(target, source)
        for _ in range(repeats):
            with timer.measure(name):
                operation(target, source)
    del source, target
    empty_cache(device)
    return Peaks(
        matmul_flops_per_s=2 * size**3 / min(timer.records["matmul"]),
        bandwidth_bytes_per_s=max(moved[name] / min(timer.records[name]) for name in moved),
        matmul_size=size, copy_bytes=copy_bytes, precision=precision,
    )


def warm_up(operation: Callable[[], object], wait: Callable[[], None], seconds: float,
            clock: Callable[[], float] = time.perf_counter) -> int:
    """Run `operation` once, then again until `seconds` have passed with the device's work done;
    returns how many times it ran."""
    started, runs = clock(), 0
    while True:
        operation()
        wait()
        runs += 1
        if clock() - started >= seconds:
            return runs
