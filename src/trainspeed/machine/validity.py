"""Signs that a figure is not what it seems: other load on the CPU, throttling, an idle GPU.

Everything is read before and after a case from counters the kernel and driver keep, so no
monitor thread competes with a CPU case for its cores.
"""

from __future__ import annotations

import os
import re
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # at run time only the device's .type is read: a Keras case's process has no torch
    import torch

# Other processes using more than this many cores during a CPU case make its time suspect.
OTHER_LOAD_CORES = 0.25
# A GPU busy less than this share of the time is waiting for data or for the host.
IDLE_GPU_UTILIZATION = 0.5


def reset_host_peak() -> None:
    # Writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so each case gets its own peak.
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_host_memory_bytes() -> int | None:
    try:
        status = Path("/proc/self/status").read_text()
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        if match:
            return int(match.group(1)) * 1024
    except OSError:
        pass
    try:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)
    except OSError:
        return None


def _busy_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of the whole machine since boot, in clock ticks."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values[:8]) - idle, sum(values[:8])


def _throttle_count() -> int | None:
    total, found = 0, False
    for path in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/thermal_throttle/core_throttle_count"):
        try:
            total += int(path.read_text())
            found = True
        except (OSError, ValueError):
            continue
    return total if found else None


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Snapshot:
    wall_s: float
    own_cpu_s: float
    machine: tuple[int, int] | None
    throttle_count: int | None
    load_average: float | None

    @classmethod
    def take(cls) -> Snapshot:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        return cls(time.perf_counter(), _own_cpu_s(), _busy_jiffies(), _throttle_count(), load)


def other_cpu_load(before: Snapshot, after: Snapshot) -> float | None:
    """Cores' worth of CPU time that processes other than this one used between the snapshots."""
    if before.machine is None or after.machine is None:
        return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy_s = (after.machine[0] - before.machine[0]) / ticks
    wall = after.wall_s - before.wall_s
    if wall <= 0:
        return None
    return max(0.0, busy_s - (after.own_cpu_s - before.own_cpu_s)) / wall


def under_load(device: torch.device, before: Snapshot, after: Snapshot) -> bool:
    """Whether other processes took enough of the CPU during a CPU case to make its time too high."""
    other = other_cpu_load(before, after)
    return device.type == "cpu" and other is not None and other > OTHER_LOAD_CORES


def usable_cores() -> int:
    """The cores this process may run on (its affinity, as taskset, cgroups or Slurm narrow it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def oversubscription(threads: int, processes: int = 1, cores: int | None = None) -> str | None:
    """Why a CPU time is no result when `processes` x `threads` exceed the cores, or None."""
    cores = cores or usable_cores()
    if processes * threads <= cores:
        return None
    ranks = f"{processes} processes x {threads} threads" if processes > 1 else f"{threads} threads"
    return (f"{ranks} on {cores} cores: the cores are oversubscribed, so the time measures their sharing, not "
            f"the work; use at most {cores} threads in all (--cpu-threads)")


def warnings_for(device: torch.device, ran_on: torch.device, before: Snapshot, after: Snapshot,
                 gpu_utilization: float | None = None, threads: int | None = None) -> list[str]:
    found = []
    crowded = oversubscription(threads) if device.type == "cpu" and threads else None
    if crowded:
        found.append(crowded)
    if ran_on.type != device.type:
        found.append(f"asked for {device} but the model ran on {ran_on}: this is not a {device.type} figure")
    if under_load(device, before, after):
        other = other_cpu_load(before, after)
        found.append(f"other processes used {other:.1f} cores during this CPU case "
                     f"(load average {before.load_average:.1f} -> {after.load_average:.1f}); its time is too high")
    if before.throttle_count is not None and after.throttle_count is not None \
            and after.throttle_count > before.throttle_count:
        found.append(f"the CPU was thermally throttled {after.throttle_count - before.throttle_count} times "
                     "during this case: clocks fell")
    if gpu_utilization is not None and gpu_utilization < IDLE_GPU_UTILIZATION:
        found.append(f"the GPU was busy only {gpu_utilization:.0%} of the time: the case is bound by data or "
                     "the host, not by the GPU")
    return found
