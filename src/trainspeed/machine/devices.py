"""Everything device-specific, in one place: names, availability, sync, memory, descriptions.

CPU, CUDA and MPS all go through the same small set of functions, so the rest of trainspeed
never compares device strings by hand.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from ..cases import device_name
from ..errors import DeviceError
from .validity import peak_host_memory_bytes, reset_host_peak, usable_cores

MAX_THREADS_PER_CORE = 4


def set_cpu_threads(threads: int | None) -> int:
    """Use all usable cores unless told otherwise; returns the count in force."""
    if threads is not None and threads < 1:
        raise DeviceError(f"--cpu-threads must be at least 1, got {threads}")
    # Oversubscribing a little is an experiment; thousands of OpenMP threads crash the process.
    most = MAX_THREADS_PER_CORE * (os.cpu_count() or 1)
    if threads is not None and threads > most:
        raise DeviceError(f"--cpu-threads {threads} is more than {MAX_THREADS_PER_CORE} per core of this machine's "
                          f"{os.cpu_count()}: use at most {most}")
    torch.set_num_threads(threads or usable_cores())
    return torch.get_num_threads()


def cuda_usable() -> bool:
    return torch.cuda.is_available() and torch.cuda.device_count() > 0


def mps_usable() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def available() -> list[torch.device]:
    """The CPU and every usable accelerator, in the order they are run."""
    devices = [torch.device("cpu")]
    if cuda_usable():
        devices += [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    if mps_usable():
        devices.append(torch.device("mps"))
    return devices


def display_name(device: torch.device) -> str:
    """'cuda:0', 'cpu', 'mps': the name a user types and reads."""
    if device.type == "cuda":
        return f"cuda:{device.index or 0}"
    return str(device)


def resolve(names: list[str] | None) -> list[torch.device]:
    """Turn user device names into torch devices; None means the CPU and every accelerator."""
    if not names:
        return available()
    resolved: list[torch.device] = []
    for raw in names:
        name = device_name(raw)
        try:
            device = torch.device(name)
        except RuntimeError:
            raise DeviceError(
                f"unknown device {raw!r}; valid names: cpu, cuda, cuda:N, mps "
                f"(available here: {', '.join(map(display_name, available()))})"
            ) from None
        if device.type not in ("cpu", "cuda", "mps"):
            raise DeviceError(f"unsupported device {raw!r}; valid names: cpu, cuda, cuda:N, mps")
        _check_usable(device, raw)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", 0)
        if device.type == "cpu":
            device = torch.device("cpu")
        if device not in resolved:
            resolved.append(device)
    return resolved


def _check_usable(device: torch.device, raw: str) -> None:
    here = ", ".join(map(display_name, available()))
    if device.type == "cuda":
        if not cuda_usable():
            raise DeviceError(f"cannot use {raw!r}: {no_cuda_reason()} (available here: {here})")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(f"cannot use {raw!r}: this machine has {count} CUDA device(s) (available here: {here})")
    elif device.type == "mps" and not mps_usable():
        raise DeviceError(f"cannot use {raw!r}: {no_mps_reason()} (available here: {here})")


def no_cuda_reason() -> str:
    """Why CUDA cannot be used here, and what fixes it."""
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return (
            f"this PyTorch ({torch.__version__}) is built without CUDA; install a CUDA build "
            "(see https://pytorch.org/get-started/locally/)"
        )
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1", "none", "NoDevFiles"):
        return f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU; unset it or list the GPUs to use"
    if sys.platform.startswith("linux") and not Path("/proc/driver/nvidia/version").exists() \
            and shutil.which("nvidia-smi") is None:
        return "no NVIDIA driver is loaded (no /proc/driver/nvidia/version, no nvidia-smi); install the driver"
    try:
        torch.cuda.init()
    except Exception as error:  # the driver's own words are the most useful reason
        return f"CUDA failed to start: {str(error).splitlines()[0]}"
    return "CUDA reports no usable GPU; check `nvidia-smi` and the driver/CUDA versions"


def no_mps_reason() -> str:
    if sys.platform != "darwin":
        return "MPS (Apple GPU) exists only on macOS"
    if not torch.backends.mps.is_built():
        return "this PyTorch is built without MPS; install the standard macOS build"
    return "MPS needs macOS 12.3+ on Apple silicon or an AMD GPU"


def no_gpu_reason() -> str | None:
    if cuda_usable() or mps_usable():
        return None
    if sys.platform == "darwin":
        return no_mps_reason()
    return no_cuda_reason()


def synchronize(device: torch.device) -> None:
    """Wait for all work queued on the device; a no-op for the CPU, which runs eagerly."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
    elif device.type != "cpu" and hasattr(torch, "accelerator"):
        torch.accelerator.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    reset_host_peak()


def peak_device_memory_bytes(device: torch.device) -> int | None:
    """The most memory the device held since the last reset (the host's for the CPU).

    On a GPU, what the caching allocator reserved at its peak: tensors, the blocks it keeps cached and
    cuDNN's and cuBLAS's workspaces, which the board really held (the allocated peak leaves those out);
    the CUDA context is counted by neither. The CPU's figure is the whole process's resident peak."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_reserved(device))
    if device.type == "mps":
        # MPS keeps no peak counter; the driver's current allocation is the closest figure.
        return int(torch.mps.driver_allocated_memory())
    return peak_host_memory_bytes()


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_host_memory() -> bool:
    """Let glibc reuse large freed blocks instead of returning them to the kernel.

    Training frees and re-allocates the same large tensors every step (the ann's first-layer
    gradient is 37 MB). Above its mmap threshold glibc maps each one afresh and unmaps it on
    free, so every step faults in thousands of pages: measured 21.9 -> 12.1 ms per ann step.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))


def configure_process() -> None:
    """Set up this process before any tensor work, the same way in the parent and every case.

    Denormal floats are flushed to zero on the CPU, as TensorFlow's CPU thread pools do: without
    it the cnn's steps slow down by a quarter once its values grow tiny, which the Keras
    originals never pay. Threads inherit the mode, so this must run before the first CPU work.
    """
    keep_freed_host_memory()
    torch.set_flush_denormal(True)


def use(device: torch.device) -> contextlib.AbstractContextManager:
    """Make `device` the current one while a case runs on it.

    CUDA calls that take no device (new streams, graph capture pools, the caching allocator's
    defaults) go to the current device; without this every case would also touch cuda:0.
    """
    if device.type == "cuda":
        return torch.cuda.device(device)
    return contextlib.nullcontext()


def configure_device(device: torch.device) -> None:
    """Per-device settings in force while a case runs.

    cuDNN autotuning: the cnn's convolutions have fixed shapes, so trying cuDNN's algorithms once
    and keeping the fastest pays back within the first epoch (as Keras on TensorFlow does).
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


# The environment variable that decides which GPUs a process sees, and how they are numbered.
VISIBLE = "CUDA_VISIBLE_DEVICES"


def isolate_gpu(device_name: str, environ: dict[str, str]) -> tuple[dict[str, str], str]:
    """The environment for a process that must see only `device_name`, and its name there.

    A case's process sees its one GPU as cuda:0, so nothing in it can touch another GPU (and the
    parent's numbering, itself perhaps narrowed by CUDA_VISIBLE_DEVICES, is kept). Pure, so the
    selection is tested without a GPU.
    """
    kind, _, index = device_name.partition(":")
    if kind != "cuda":
        return dict(environ), device_name
    return isolate_gpus([int(index or 0)], environ, device_name), "cuda:0"


def isolate_gpus(positions: Sequence[int], environ: dict[str, str], asked: str | None = None) -> dict[str, str]:
    """The environment for processes that must see only the parent's GPUs at `positions` (its torch
    numbers), in that order: each number goes through the parent's own CUDA_VISIBLE_DEVICES, as SLURM
    sets it, so cuda:0 under CUDA_VISIBLE_DEVICES=2,3 is board 2 (or its UUID), never board 0."""
    visible = environ.get(VISIBLE)
    if visible is None or not visible.strip():
        return {**environ, VISIBLE: ",".join(map(str, positions))}
    entries = [entry.strip() for entry in visible.split(",") if entry.strip()]
    missing = [position for position in positions if position >= len(entries)]
    if missing:
        name = asked or f"cuda:{missing[0]}"
        raise DeviceError(f"cannot use {name!r}: {VISIBLE}={visible!r} shows {len(entries)} GPU(s)")
    return {**environ, VISIBLE: ",".join(entries[position] for position in positions)}


def total_memory_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[1])
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory())
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def is_out_of_memory(error: BaseException) -> bool:
    """A device's (CUDA's own error) or the host's (the CPU allocator's message) running out of memory."""
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error))


def empty_cache(device: torch.device) -> None:
    """Give cached blocks back after an out-of-memory error, so what follows starts clean."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()




def gpu_identity(device: torch.device) -> tuple[str, str | None]:
    """A CUDA device's maker and the name NVML knows it by ("GPU-<uuid>", or "MIG-<uuid>" for a MIG
    slice): the same board whatever CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER say (NVML numbers boards
    its own way). CUDA gives a slice's UUID bare, as it gives a board's; the mask that chose the slice
    says which it is, and NVML is asked by both names where it does not (power._nvml_meter)."""
    if torch.version.hip:
        return "amd", None
    uuid = str(torch.cuda.get_device_properties(device).uuid)
    if uuid.startswith(("GPU-", "MIG-")):
        return "nvidia", uuid
    visible = [entry.strip() for entry in os.environ.get(VISIBLE, "").split(",") if entry.strip()]
    position = device.index or 0
    slice_ = position < len(visible) and visible[position].upper().startswith("MIG-")
    return "nvidia", f"{'MIG' if slice_ else 'GPU'}-{uuid}"
