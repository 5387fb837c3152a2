"""Everything device-specific, in one place: names, availability, sync, memory, descriptions.

CPU, CUDA and MPS all go through the same small set of functions, so the rest of trainspeed
never compares device strings by hand.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import DeviceError

# ISA extensions that decide how fast a CPU trains (vector width, bf16 and matrix units).
_CPU_FEATURES = (
    "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
    "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve",
)


@dataclass
class CpuInfo:
    model: str
    logical_cores: int
    usable_cores: int
    physical_cores: int | None
    threads: int
    features: list[str]
    torch_capability: str
    governor: str | None
    max_mhz: float | None


@dataclass
class GpuInfo:
    device: str
    name: str
    memory_bytes: int | None
    compute_capability: str | None
    multiprocessors: int | None = None
    driver: str | None = None
    cuda: str | None = None
    cudnn: str | None = None


@dataclass
class DeviceReport:
    cpu: CpuInfo
    gpus: list[GpuInfo] = field(default_factory=list)
    no_gpu_reason: str | None = None


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def set_cpu_threads(threads: int | None) -> int:
    """Use all usable cores unless told otherwise; returns the count in force."""
    if threads is not None and threads < 1:
        raise DeviceError(f"--cpu-threads must be at least 1, got {threads}")
    torch.set_num_threads(threads or usable_cores())
    return torch.get_num_threads()


def _cuda_usable() -> bool:
    return torch.cuda.is_available() and torch.cuda.device_count() > 0


def _mps_usable() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def available() -> list[torch.device]:
    """The CPU and every usable accelerator, in the order they are run."""
    devices = [torch.device("cpu")]
    if _cuda_usable():
        devices += [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    if _mps_usable():
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
        name = raw.strip().lower()
        # "gpu" is what people type; on this tool's platforms it means the first CUDA device.
        name = {"gpu": "cuda"}.get(name, name)
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
        if not _cuda_usable():
            raise DeviceError(f"cannot use {raw!r}: {no_cuda_reason()} (available here: {here})")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(f"cannot use {raw!r}: this machine has {count} CUDA device(s) (available here: {here})")
    elif device.type == "mps" and not _mps_usable():
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
    if _cuda_usable() or _mps_usable():
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
    _reset_host_peak()


def peak_device_memory_bytes(device: torch.device) -> int | None:
    """The most memory the device held since the last reset (the host's for the CPU)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    if device.type == "mps":
        # MPS keeps no peak counter; the driver's current allocation is the closest figure.
        return int(torch.mps.driver_allocated_memory())
    return peak_host_memory_bytes()


def _reset_host_peak() -> None:
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
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)
    except (ImportError, OSError):
        return None


def _cpuinfo_fields() -> list[dict[str, str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    blocks = []
    for block in text.strip().split("\n\n"):
        entry = {}
        for line in block.splitlines():
            key, _, value = line.partition(":")
            entry[key.strip()] = value.strip()
        blocks.append(entry)
    return blocks


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def describe_cpu() -> CpuInfo:
    blocks = _cpuinfo_fields()
    first = blocks[0] if blocks else {}
    model = first.get("model name") or first.get("Model") or platform.processor() or platform.machine()
    if sys.platform == "darwin":
        try:
            model = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
            ).stdout.strip() or model
        except (OSError, subprocess.SubprocessError):
            pass
    flags = set((first.get("flags") or first.get("Features") or "").split())
    cores = {(b.get("physical id"), b.get("core id")) for b in blocks if "core id" in b}
    max_khz = _read_text("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    return CpuInfo(
        model=model,
        logical_cores=os.cpu_count() or 1,
        usable_cores=usable_cores(),
        physical_cores=len(cores) or None,
        threads=torch.get_num_threads(),
        features=[f for f in _CPU_FEATURES if f in flags],
        torch_capability=torch.backends.cpu.get_cpu_capability(),
        governor=_read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        max_mhz=int(max_khz) / 1000 if max_khz and max_khz.isdigit() else None,
    )


def nvidia_driver_version() -> str | None:
    text = _read_text("/proc/driver/nvidia/version")
    if text:
        match = re.search(r"Kernel Module\s+(?:for \S+\s+)?([\d.]+)", text)
        if match:
            return match.group(1)
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10,
            ).stdout.split()
            return out[0] if out else None
        except (OSError, subprocess.SubprocessError):
            return None
    return None


def describe_gpus() -> list[GpuInfo]:
    gpus = []
    if _cuda_usable():
        driver = nvidia_driver_version()
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            gpus.append(GpuInfo(
                device=f"cuda:{index}",
                name=props.name,
                memory_bytes=int(props.total_memory),
                compute_capability=f"{props.major}.{props.minor}",
                multiprocessors=props.multi_processor_count,
                driver=driver,
                cuda=torch.version.cuda or getattr(torch.version, "hip", None),
                cudnn=str(cudnn) if cudnn else None,
            ))
    if _mps_usable():
        gpus.append(GpuInfo(device="mps", name="Apple GPU (MPS)", memory_bytes=None, compute_capability=None))
    return gpus


def device_label(device: torch.device) -> str:
    """A human name for a device: the GPU's model, or the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return describe_cpu().model


def report() -> DeviceReport:
    return DeviceReport(cpu=describe_cpu(), gpus=describe_gpus(), no_gpu_reason=no_gpu_reason())


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


def total_memory_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[1])
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory())
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def empty_cache(device: torch.device) -> None:
    """Give cached blocks back after an out-of-memory error, so what follows starts clean."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


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
    from .precision import matmul_dtype
    from .timing import Timer  # devices sits below timing in the import order

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
