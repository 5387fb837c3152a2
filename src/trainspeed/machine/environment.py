"""The machine and software a run measured, recorded so results can be compared later."""

from __future__ import annotations

import platform
import socket
import sys
from dataclasses import asdict
from importlib import metadata
from typing import Any

import torch

from . import describe

# The packages whose versions change what a run measures.
_PACKAGES = ("torch", "numpy", "rich", "matplotlib", "trainspeed")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def collect() -> dict[str, Any]:
    report = describe.report()
    return {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None,
        "cpu": asdict(report.cpu),
        "gpus": [asdict(gpu) for gpu in report.gpus],
        "no_gpu_reason": report.no_gpu_reason,
        # Set per case by devices.configure_device; said here because it changes what a GPU case times.
        "gpu_settings": ("cuDNN autotuning on (torch.backends.cudnn.benchmark): each convolution's fastest "
                         "algorithm is chosen once, in the first steps" if report.gpus else None),
        "packages": package_versions(),
    }
