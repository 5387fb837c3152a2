"""What the devices are: the CPU's model and features, each GPU's name, memory and driver."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .devices import cuda_usable, mps_usable, no_gpu_reason, usable_cores
from .precision import PRECISIONS, unsupported_reason

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
    precisions: list[str] = field(default_factory=list)  # those it can measure honestly


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
    precisions: list[str] = field(default_factory=list)


@dataclass
class DeviceReport:
    cpu: CpuInfo
    gpus: list[GpuInfo] = field(default_factory=list)
    no_gpu_reason: str | None = None


def precisions_of(device: torch.device) -> list[str]:
    return [name for name in PRECISIONS if unsupported_reason(name, device) is None]


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


def _cpu_model(first: dict[str, str]) -> str:
    """The CPU's model name, from the first /proc/cpuinfo block (or macOS's sysctl)."""
    model = first.get("model name") or first.get("Model") or platform.processor() or platform.machine()
    if sys.platform == "darwin":
        try:
            model = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
            ).stdout.strip() or model
        except (OSError, subprocess.SubprocessError):
            pass
    return model


def describe_cpu() -> CpuInfo:
    blocks = _cpuinfo_fields()
    first = blocks[0] if blocks else {}
    model = _cpu_model(first)
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
        precisions=precisions_of(torch.device("cpu")),
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
    if cuda_usable():
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
                precisions=precisions_of(torch.device("cuda", index)),
            ))
    if mps_usable():
        gpus.append(GpuInfo(device="mps", name="Apple GPU (MPS)", memory_bytes=None, compute_capability=None,
                            precisions=precisions_of(torch.device("mps"))))
    return gpus


def device_label(device: torch.device) -> str:
    """A human name for a device: the GPU's model, or the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (MPS)"
    blocks = _cpuinfo_fields()
    return _cpu_model(blocks[0] if blocks else {})


def report() -> DeviceReport:
    return DeviceReport(cpu=describe_cpu(), gpus=describe_gpus(), no_gpu_reason=no_gpu_reason())


