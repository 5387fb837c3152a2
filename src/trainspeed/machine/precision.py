"""Numeric precision as an explicit axis: what each name means, where it runs, and how it is set.

- fp32: true single precision (TF32 tensor-core math off), the Keras originals' arithmetic.
- tf32: fp32 storage, matmuls and convolutions on TF32 tensor cores (NVIDIA Ampere and later).
- bf16: mixed precision by autocast: matmuls and convolutions in bfloat16, weights, optimizer and
  loss in fp32. Runs on GPUs with bf16 units and on CPUs with AVX512-BF16 or AMX.
"""

from __future__ import annotations

import contextlib

import torch

from ..config import PRECISIONS

__all__ = ["PRECISIONS", "apply", "autocast", "matmul_dtype", "tf32_enabled", "unsupported_reason"]


def _cpu_has_bf16() -> bool:
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and torch.backends.mkldnn.is_available()


def unsupported_reason(precision: str, device: torch.device) -> str | None:
    """Why `precision` cannot be measured honestly on `device`, or None when it can."""
    if precision == "fp32":
        return None
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if major < 8:
            return (f"{precision} needs an NVIDIA GPU of compute capability 8.0 (Ampere) or newer; "
                    f"this one is {major}.{minor}; use --precision fp32")
        return None
    if precision == "tf32":
        return f"tf32 is a GPU tensor-core format; {device.type} would run it as plain fp32; use fp32 or bf16 there"
    if device.type == "cpu" and not _cpu_has_bf16():
        return "this CPU has neither AVX512-BF16 nor AMX, so bf16 would be emulated and slow; use --precision fp32"
    if device.type not in ("cpu", "cuda"):
        return f"bf16 is not measured on {device.type} yet; use --precision fp32"
    return None


def apply(precision: str) -> None:
    """Set this process's matmul and convolution modes for `precision` (process-wide flags).

    Through the per-backend `fp32_precision` settings that PyTorch documents from 2.9 on, where they
    exist: the legacy `allow_tf32` flags may warn there, and mixing the two makes PyTorch raise when
    a flag is read. cuDNN's convolutions default to TF32 in both, so fp32 must turn it off.
    """
    tf32 = precision == "tf32"
    if _has_fp32_precision_settings():
        mode = "tf32" if tf32 else "ieee"
        torch.backends.cuda.matmul.fp32_precision = mode
        torch.backends.cudnn.conv.fp32_precision = mode
        return
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")


def tf32_enabled() -> bool:
    """Whether matmuls and convolutions may run in TF32 now: what `apply` set, read back."""
    if _has_fp32_precision_settings():
        return "tf32" in (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision)
    return torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32


def _has_fp32_precision_settings() -> bool:
    return hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(
        getattr(torch.backends.cudnn, "conv", None), "fp32_precision")


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a forward pass runs in: bf16 autocast, or nothing for the fp32-storage modes."""
    if precision == "bf16":
        # No weight cache: each weight is used once per step, and a cache breaks CUDA graph replay.
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext()


def matmul_dtype(precision: str) -> torch.dtype:
    """The element type of the peak-measuring matmul: the one the model's matmuls run in."""
    return torch.bfloat16 if precision == "bf16" else torch.float32
