"""What a device can do at best, measured: the ceilings a training step is judged against."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..timing import Timer
from .devices import empty_cache, synchronize
from .precision import matmul_dtype


@dataclass
class Peaks:
    """What a device can do at best, measured: the ceilings a training step is judged against."""

    matmul_flops_per_s: float
    bandwidth_bytes_per_s: float
    matmul_size: int
    copy_bytes: int
    precision: str = "fp32"  # of the matmul


def measure_peaks(device: torch.device, precision: str = "fp32", repeats: int = 3) -> Peaks:
    """The best of a few large matmuls (in `precision`, as set up by precision.apply) and large
    copies on the device, timed with sync."""
    timer = Timer(synchronize=lambda: synchronize(device))
    size = 2048 if device.type == "cpu" else 8192
    a = torch.randn(size, size, device=device, dtype=matmul_dtype(precision))
    b = torch.randn(size, size, device=device, dtype=matmul_dtype(precision))
    torch.mm(a, b)  # warm-up: kernel selection, thread start
    for _ in range(repeats):
        with timer.measure("matmul"):
            torch.mm(a, b)
    del a, b
    copy_bytes = (256 if device.type == "cpu" else 1024) * 2**20
    source = torch.ones(copy_bytes // 4, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    for _ in range(repeats):
        with timer.measure("copy"):
            target.copy_(source)
    del source, target
    empty_cache(device)
    return Peaks(
        matmul_flops_per_s=2 * size**3 / min(timer.records["matmul"]),
        bandwidth_bytes_per_s=2 * copy_bytes / min(timer.records["copy"]),  # read and write
        matmul_size=size, copy_bytes=copy_bytes, precision=precision,
    )
